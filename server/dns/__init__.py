"""qmail's view of DNS: glibc's stub resolver and netqmail-1.06's dns.c.

* :mod:`server.dns.wire` — reading answers byte by byte as dn_expand does.
* :mod:`server.dns.resolver` — ``res_query``: servers, retries, TC → TCP,
  rcode → h_errno; the transport is injected.
* :mod:`server.dns.qmaildns` — dns.c: ``dns_cname``, ``dns_mxip``,
  ``dns_ip``, soft versus hard, the 512-byte buffer and qmail-103.patch.
* :mod:`server.dns.resolvconf` — which name servers, from a resolv.conf file.
* :mod:`server.dns.transport` — the real UDP/TCP transport.
"""
