/* TCP addresses in the "host:port" / "[v6]:port" form every listener and
 * dialer of the daemon takes (NBD, NVMe/TCP, replication). */
#ifndef URBD_NET_H
#define URBD_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* host (brackets removed; may be empty) and a pointer to the port part:
 * 0, or -EINVAL without a ':' or when host does not fit */
int urbd_split_hostport(const char *spec, char *host, size_t hostlen, const char **port);
/* getaddrinfo of spec; passive: an empty host means any address (bind).
 * 0, -EINVAL (malformed) or -EHOSTUNREACH (does not resolve) */
int urbd_resolve(const char *spec, bool passive, struct sockaddr_storage *sa,
		 socklen_t *len);
/* a listening TCP socket (CLOEXEC, SO_REUSEADDR) bound to spec: fd or -errno */
int urbd_listen_tcp(const char *spec, int backlog);
/* the local port a socket is bound to, 0 if unknown */
int urbd_sock_port(int fd);

#endif
