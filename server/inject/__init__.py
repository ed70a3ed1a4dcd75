"""qmail-inject, sendmail and their token822-style header and address rewriting."""
