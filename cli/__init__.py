"""The ``elvwatch`` command line: the commands, what they share (loading a config with
its errors printed, the store's ticket manager, exit codes), the composition of a
running daemon with its HTTP listener (run), and the demo (the only runtime user of
lab/).  The top room: it imports the others; nothing imports it."""
