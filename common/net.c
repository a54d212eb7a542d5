#include "net.h"

#include <errno.h>
#include <netdb.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

int urbd_split_hostport(const char *spec, char *host, size_t hostlen, const char **port)
{
	const char *colon = strrchr(spec, ':');
	size_t hl;

	if (!colon || (hl = (size_t)(colon - spec)) >= hostlen)
		return -EINVAL;
	memcpy(host, spec, hl);
	host[hl] = '\0';
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		memmove(host, host + 1, hl - 2);
		host[hl - 2] = '\0';
	}
	*port = colon + 1;
	return 0;
}

int urbd_resolve(const char *spec, bool passive, struct sockaddr_storage *sa,
		 socklen_t *len)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 }, *ai;
	const char *port;
	char host[256];

	if (urbd_split_hostport(spec, host, sizeof(host), &port) || !*port ||
	    (!passive && !host[0]))
		return -EINVAL;
	if (getaddrinfo(host[0] ? host : NULL, port, &hints, &ai))
		return -EHOSTUNREACH;
	memcpy(sa, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

int urbd_listen_tcp(const char *spec, int backlog)
{
	struct sockaddr_storage sa;
	socklen_t len;
	int fd, one = 1, ret;

	ret = urbd_resolve(spec, true, &sa, &len);
	if (ret)
		return ret == -EHOSTUNREACH ? -EINVAL : ret;
	fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, backlog) < 0) {
		ret = -errno;
		if (fd >= 0)
			close(fd);
		return ret;
	}
	return fd;
}

int urbd_sock_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &sl))
		return 0;
	return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
					     : ((struct sockaddr_in6 *)&ss)->sin6_port);
}
