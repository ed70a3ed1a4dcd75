"""POP3: qmail-popup, qmail-pop3d and a checkpassword of ours (see core.py)."""
