/* A TCP relay that delays each direction by a fixed time: the harness's
 * stand-in for `tc netem` on kernels without sch_netem (this CI kernel
 * has neither netem nor fq, so no EDT pacing either). It replaced a
 * Python relay whose own cost the benchmarks were measuring:
 *
 *     urbd-relay --listen HOST:PORT --target HOST:PORT --delay-ms MS
 *                [--port-file F]
 *
 * Every byte received on one side is sent to the other MS milliseconds
 * after it arrived, in order (a one-way delay: a request/response pays
 * 2 x MS). Port 0 picks a free port; --port-file receives the port once
 * listening. One thread, epoll with nanosecond timeouts (epoll_pwait2)
 * and a timer slack of 1 ns, waking early by the wake-ups' usual lateness:
 * chunks leave on time on average, where the Python relay's threads came
 * ~0.2 ms late per round trip (RTT +0.5 ms gave 0.77 ms on loopback, this
 * relay 0.60 with its two extra hops, 0.04 of them at +0). Memory
 * is bounded: a direction holding 16 MiB stops reading (TCP
 * backpressure). A connection whose either side fails is closed on both;
 * EOF is passed on, delayed like data. Runs until SIGTERM. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CHUNK     (64 * 1024)
#define MAX_HELD  (16u << 20)     /* bytes queued per direction */
#define MAX_IOV   64
#define GONE      0xffffffffu

struct chunk {
	struct chunk *next;
	uint64_t due;
	uint32_t len, off;        /* len 0: EOF */
	char data[];
};

struct dir {
	int from, to;             /* fds */
	struct chunk *head, *tail;
	uint64_t held;
	bool eof_in, eof_out;     /* read EOF; passed it on */
	bool blocked;             /* `to` said EAGAIN (or is connecting) */
};

struct pair {
	struct pair *next;
	int fd[2];                /* 0: the client, 1: upstream */
	struct dir d[2];          /* d[0]: client -> upstream, d[1]: back */
	bool connecting, dead;
	uint32_t ev[2];           /* epoll interest now set per fd; GONE: removed */
};

/* what an epoll event names: a pair's side, or the listener (pair NULL) */
struct tag {
	struct pair *p;
	int side;
};

static int ep;
static uint64_t delay_ns;
/* how late a timed wake-up comes (moving average): we wake that much
 * early, and send what falls due within it, so chunks leave on time on
 * average (a VM's timer wake-ups come ~50 us late here) */
static uint64_t early_ns;
static struct pair *pairs;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int hostport(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	char *end;
	long port;

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end || port < 0 || port > 65535)
		return -1;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static struct tag *tag_of(struct pair *p, int side)
{
	static struct tag listener = { NULL, 0 };

	if (!p)
		return &listener;
	/* two tags per pair, allocated with it (after the struct) */
	return (struct tag *)(p + 1) + side;
}

/* the epoll interest of side s: read while its outgoing direction has
 * room, write while the direction into it is blocked */
static void update(struct pair *p, int s)
{
	struct dir *out = &p->d[s];       /* reads from fd[s] */
	struct dir *in = &p->d[1 - s];    /* writes to fd[s] */
	uint32_t ev = 0;
	struct epoll_event e;

	if (p->ev[s] == GONE)
		return;
	if (out->eof_in && in->eof_out) {
		/* shut both ways: epoll would report its HUP on every turn */
		epoll_ctl(ep, EPOLL_CTL_DEL, p->fd[s], NULL);
		p->ev[s] = GONE;
		return;
	}
	if (!out->eof_in && out->held < MAX_HELD && !p->connecting)
		ev |= EPOLLIN;
	if (in->blocked || (s == 1 && p->connecting))
		ev |= EPOLLOUT;
	if (ev == p->ev[s])
		return;
	e.events = ev;
	e.data.ptr = tag_of(p, s);
	epoll_ctl(ep, EPOLL_CTL_MOD, p->fd[s], &e);
	p->ev[s] = ev;
}

static void kill_pair(struct pair *p, const char *why)
{
	if (p->dead)
		return;
	if (why)
		fprintf(stderr, "relay: connection closed: %s\n", why);
	p->dead = true;
}

static void reap(void)
{
	for (struct pair **pp = &pairs; *pp;) {
		struct pair *p = *pp;

		if (!p->dead && !(p->d[0].eof_out && p->d[1].eof_out)) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		for (int s = 0; s < 2; s++) {
			struct chunk *c = p->d[s].head;

			while (c) {
				struct chunk *n = c->next;

				free(c);
				c = n;
			}
			close(p->fd[s]);
		}
		free(p);
	}
}

static void read_side(struct pair *p, int s, uint64_t now)
{
	struct dir *d = &p->d[s];

	while (!d->eof_in && d->held < MAX_HELD) {
		struct chunk *c = malloc(sizeof(*c) + CHUNK);
		ssize_t n;

		if (!c) {
			kill_pair(p, "out of memory");
			return;
		}
		n = recv(d->from, c->data, CHUNK, 0);
		if (n < 0) {
			free(c);
			if (errno == EAGAIN || errno == EINTR)
				break;
			kill_pair(p, strerror(errno));
			return;
		}
		c->next = NULL;
		c->due = now + delay_ns;
		c->len = (uint32_t)n;
		c->off = 0;
		if (n == 0)
			d->eof_in = true;
		if (d->tail)
			d->tail->next = c;
		else
			d->head = c;
		d->tail = c;
		d->held += (uint64_t)n;
		if ((size_t)n < CHUNK)
			break; /* drained for now: no extra recv that says EAGAIN */
	}
	update(p, s);
}

/* sends the due chunks of d in one writev; the due time of the first
 * one still held, or 0 */
static uint64_t write_dir(struct pair *p, struct dir *d, int to_side, uint64_t now)
{
	while (d->head && !d->blocked && !p->dead) {
		struct iovec iov[MAX_IOV];
		int n = 0;
		ssize_t w;

		if (d->head->due > now + early_ns)
			return d->head->due;
		if (d->head->len == 0) { /* EOF, in order */
			struct chunk *c = d->head;

			shutdown(d->to, SHUT_WR);
			d->eof_out = true;
			d->head = c->next;
			if (!d->head)
				d->tail = NULL;
			free(c);
			update(p, to_side);
			continue;
		}
		for (struct chunk *c = d->head; c && n < MAX_IOV && c->len && c->due <= now + early_ns;
		     c = c->next) {
			iov[n].iov_base = c->data + c->off;
			iov[n++].iov_len = c->len - c->off;
		}
		w = writev(d->to, iov, n);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR) {
				d->blocked = errno == EAGAIN;
				update(p, to_side);
				return 0;
			}
			kill_pair(p, strerror(errno));
			return 0;
		}
		d->held -= (uint64_t)w;
		while (w > 0) {
			struct chunk *c = d->head;
			uint32_t left = c->len - c->off;

			if ((size_t)w < left) {
				c->off += (uint32_t)w;
				break;
			}
			w -= left;
			d->head = c->next;
			if (!d->head)
				d->tail = NULL;
			free(c);
		}
		/* room again: read on */
		update(p, 1 - to_side);
	}
	return 0;
}

/* the dial to the target failed (err), or is under way (pending) or done */
static void dialed(struct pair *p, int err, bool pending)
{
	if (err) {
		fprintf(stderr, "relay: connect: %s\n", strerror(err));
		kill_pair(p, NULL);
		return;
	}
	p->connecting = pending;
	update(p, 0);
	update(p, 1);
}

static void accept_one(int lfd, const struct sockaddr_in *target)
{
	int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int ufd, one = 1;
	struct pair *p;

	if (cfd < 0)
		return;
	ufd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	p = calloc(1, sizeof(*p) + 2 * sizeof(struct tag));
	if (ufd < 0 || !p) {
		close(cfd);
		if (ufd >= 0)
			close(ufd);
		free(p);
		return;
	}
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	p->fd[0] = cfd;
	p->fd[1] = ufd;
	p->d[0] = (struct dir){ .from = cfd, .to = ufd };
	p->d[1] = (struct dir){ .from = ufd, .to = cfd };
	for (int s = 0; s < 2; s++) {
		struct epoll_event e = { .events = 0, .data.ptr = tag_of(p, s) };

		*tag_of(p, s) = (struct tag){ p, s };
		epoll_ctl(ep, EPOLL_CTL_ADD, p->fd[s], &e);
	}
	p->next = pairs;
	pairs = p;
	dialed(p, connect(ufd, (const struct sockaddr *)target, sizeof(*target)) < 0 &&
		  errno != EINPROGRESS ? errno : 0, true);
}

static void connected(struct pair *p)
{
	int err = 0;
	socklen_t len = sizeof(err);

	getsockopt(p->fd[1], SOL_SOCKET, SO_ERROR, &err, &len);
	dialed(p, err, false);
}

int main(int argc, char **argv)
{
	const char *listen_s = NULL, *target_s = NULL, *port_file = NULL;
	double delay_ms = -1;
	struct sockaddr_in la, ta;
	socklen_t alen = sizeof(la);
	int lfd, one = 1;
	struct epoll_event e;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--listen"))
			listen_s = argv[i + 1];
		else if (!strcmp(argv[i], "--target"))
			target_s = argv[i + 1];
		else if (!strcmp(argv[i], "--delay-ms"))
			delay_ms = strtod(argv[i + 1], NULL);
		else if (!strcmp(argv[i], "--port-file"))
			port_file = argv[i + 1];
		else
			break;
	}
	if (!listen_s || !target_s || !(delay_ms >= 0 && delay_ms <= 60000) ||
	    hostport(listen_s, &la) || hostport(target_s, &ta)) {
		fprintf(stderr, "usage: urbd-relay --listen IP:PORT --target IP:PORT "
			"--delay-ms 0..60000 [--port-file F]\n");
		return 2;
	}
	delay_ns = (uint64_t)(delay_ms * 1e6 + 0.5);
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(lfd, (struct sockaddr *)&la, sizeof(la)) || listen(lfd, 64) ||
	    getsockname(lfd, (struct sockaddr *)&la, &alen)) {
		fprintf(stderr, "relay: listen on %s: %s\n", listen_s, strerror(errno));
		return 1;
	}
	if (port_file) {
		char tmp[4096];
		FILE *f;

		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		f = fopen(tmp, "w");
		if (!f || fprintf(f, "%u\n", ntohs(la.sin_port)) < 0 || fclose(f) ||
		    rename(tmp, port_file)) {
			fprintf(stderr, "relay: %s: %s\n", port_file, strerror(errno));
			return 1;
		}
	}
	printf("relay: %s (port %u) -> %s, +%g ms each way\n", listen_s, ntohs(la.sin_port),
	       target_s, delay_ms);
	fflush(stdout);
	ep = epoll_create1(EPOLL_CLOEXEC);
	e.events = EPOLLIN;
	e.data.ptr = tag_of(NULL, 0);
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e)) {
		fprintf(stderr, "relay: epoll: %s\n", strerror(errno));
		return 1;
	}
	for (;;) {
		struct epoll_event evs[64];
		uint64_t now = now_ns(), next = 0;
		struct timespec ts, *tsp = NULL;
		uint64_t wake = 0;
		int n;

		for (struct pair *p = pairs; p; p = p->next)
			for (int s = 0; s < 2; s++) {
				uint64_t due = write_dir(p, &p->d[s], 1 - s, now);

				if (due && (!next || due < next))
					next = due;
			}
		reap();
		if (next) {
			uint64_t wait = next > now + early_ns ? next - now - early_ns : 0;

			wake = now + wait;
			ts.tv_sec = (time_t)(wait / 1000000000u);
			ts.tv_nsec = (long)(wait % 1000000000u);
			tsp = &ts;
		}
		n = epoll_pwait2(ep, evs, 64, tsp, NULL);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "relay: epoll_pwait2: %s\n", strerror(errno));
			return 1;
		}
		now = now_ns();
		if (n == 0 && wake && now >= wake) {
			uint64_t late = now - wake;

			if (late > 500000)
				late = 500000; /* a preemption, not the timer */
			early_ns = early_ns - early_ns / 16 + late / 16;
		}
		for (int i = 0; i < n; i++) {
			struct tag *t = evs[i].data.ptr;
			struct pair *p = t->p;

			if (!p) {
				accept_one(lfd, &ta);
				continue;
			}
			if (p->dead)
				continue;
			if (p->connecting && t->side == 1) {
				if (evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
					connected(p);
				continue;
			}
			if (evs[i].events & (EPOLLOUT | EPOLLERR)) {
				p->d[1 - t->side].blocked = false;
				update(p, t->side);
			}
			if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
				read_side(p, t->side, now);
		}
	}
}
