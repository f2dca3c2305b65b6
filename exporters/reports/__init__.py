"""The contract's records and reports, computed from the store.

Modules: ``periods`` (report ranges split into local calendar months), ``availability``
(设备运行情况记录), ``sla`` (deadlines met and breached), ``service`` (服务记录 / 服务回执单,
用户回访反馈信息表, 设备档案), ``brief`` (the pre-visit brief), ``render`` (HTML, CSV, PDF
— pure functions the web pages call too), ``handover`` (the contract handover zip),
``documents`` (JSON), ``screen`` (terminal tables), ``catalog`` (kind → computation and
format, shared by the command line and the daemon's report route).

Every computation takes the store and returns frozen dataclasses; rendering never
touches the database, so a page and a CLI command show the same figures.
"""
