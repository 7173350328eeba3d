"""Opening Outlook containers (TNEF winmail.dat, .msg) into their parts and header facts."""
