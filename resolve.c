/*-------------------------------------------------------------------------
 *
 * resolve.c
 *		Host names of foreign servers resolved without blocking the caller.
 *
 * libpq resolves a host name with getaddrinfo(), which blocks for as long
 * as the resolver takes, with no timeout and no way to cancel it: a slow
 * name server would hold a call past kill_session.node_timeout, and past
 * a cancel.  So the names are resolved first, by a child process that
 * writes each address to a pipe and exits.  The caller waits for the pipe
 * in the same wait as its connections, bounded by the call's deadline and
 * ended by any interrupt; a child no longer wanted is killed and reaped.
 * libpq then gets the addresses as hostaddr next to the names, which it
 * still uses for TLS and for its password file.  Addresses and socket
 * directories need no child.
 *
 * The child runs only getaddrinfo() and write(): it blocks every signal,
 * touches no shared memory, takes no lock and leaves with _exit(), so
 * none of the server's exit callbacks run in it.  It is the pattern of
 * COPY ... PROGRAM, which forks from a backend too.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  resolve.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compat.h"
#include "resolve.h"

/*
 * Whether host entry [p, p + len) of a libpq host list needs resolving: not
 * empty (the default), not a socket directory, not an address.
 */
static bool
ks_host_is_name(const char *p, size_t len)
{
	char		host[256];
	unsigned char addr[sizeof(struct in6_addr)];

	if (len == 0 || p[0] == '/' || p[0] == '@')
		return false;
	if (len >= sizeof(host))
		return true;
	memcpy(host, p, len);
	host[len] = '\0';
	return inet_pton(AF_INET, host, addr) != 1 &&
		inet_pton(AF_INET6, host, addr) != 1;
}

/* Whether any entry of hosts, a libpq host list, is a name. */
bool
ks_resolve_needed(const char *hosts)
{
	const char *p = hosts;

	for (;;)
	{
		const char *comma = strchr(p, ',');
		size_t		len = comma ? (size_t) (comma - p) : strlen(p);

		if (ks_host_is_name(p, len))
			return true;
		if (comma == NULL)
			return false;
		p = comma + 1;
	}
}

/* write() all of buf, as far as the pipe takes it. */
static void
ks_child_write(int fd, const char *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = write(fd, buf, len);

		if (n <= 0)
			return;
		buf += n;
		len -= n;
	}
}

/*
 * The child: one line per entry of hosts, its address, empty for an entry
 * that needs none, or "!" and why it could not be resolved.
 */
pg_noreturn static void
ks_resolve_child(int fd, const char *hosts)
{
	sigset_t	all;
	const char *p = hosts;

	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (;;)
	{
		const char *comma = strchr(p, ',');
		size_t		len = comma ? (size_t) (comma - p) : strlen(p);
		char		host[1025];
		char		line[INET6_ADDRSTRLEN + 300];

		line[0] = '\0';
		if (len >= sizeof(host))
			snprintf(line, sizeof(line), "!the name is too long");
		else if (ks_host_is_name(p, len))
		{
			struct addrinfo hints = {0};
			struct addrinfo *res = NULL;
			int			rc;

			memcpy(host, p, len);
			host[len] = '\0';
			hints.ai_family = AF_UNSPEC;
			hints.ai_socktype = SOCK_STREAM;
			rc = getaddrinfo(host, NULL, &hints, &res);
			if (rc != 0 || res == NULL)
				snprintf(line, sizeof(line), "!%s",
						 rc != 0 ? gai_strerror(rc) : "no address");
			else if (getnameinfo(res->ai_addr, res->ai_addrlen, line,
								 sizeof(line), NULL, 0, NI_NUMERICHOST) != 0)
				snprintf(line, sizeof(line), "!no address");
			if (res != NULL)
				freeaddrinfo(res);
		}
		else if (len > 0 && p[0] != '/' && p[0] != '@')
		{
			memcpy(line, p, len);
			line[len] = '\0';
		}
		ks_child_write(fd, line, strlen(line));
		ks_child_write(fd, "\n", 1);
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	_exit(0);
}

/*
 * Start resolving the names of hosts; false, with errno set, if the child
 * could not be started.
 */
bool
ks_resolve_start(KsResolver *r, const char *hosts)
{
	int			fds[2];

	r->pid = 0;
	r->fd = -1;
	initStringInfo(&r->answer);
	if (pipe2(fds, O_CLOEXEC) != 0)
		return false;
	r->pid = fork();
	if (r->pid < 0)
	{
		int			save_errno = errno;

		r->pid = 0;
		close(fds[0]);
		close(fds[1]);
		errno = save_errno;
		return false;
	}
	if (r->pid == 0)
	{
		close(fds[0]);
		ks_resolve_child(fds[1], hosts);
	}
	close(fds[1]);
	r->fd = fds[0];
	if (fcntl(r->fd, F_SETFL, O_NONBLOCK) != 0)
	{
		ks_resolve_stop(r);
		return false;
	}
	return true;
}

/*
 * Take what the child has written.  When it is all there, *hostaddr is the
 * libpq hostaddr list that goes with hosts, or *error says which name could
 * not be resolved.
 */
KsResolveResult
ks_resolve_read(KsResolver *r, const char *hosts, char **hostaddr,
				char **error)
{
	char		buf[1024];
	StringInfoData addrs;
	const char *p = hosts;
	const char *line;

	for (;;)
	{
		ssize_t		n = read(r->fd, buf, sizeof(buf));

		if (n > 0)
		{
			appendBinaryStringInfo(&r->answer, buf, n);
			continue;
		}
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return KS_RESOLVE_MORE;
		if (n < 0 && errno == EINTR)
			continue;
		break;					/* end of file, or an error */
	}
	ks_resolve_stop(r);

	/* One line for each entry, in order. */
	initStringInfo(&addrs);
	line = r->answer.data;
	for (;;)
	{
		const char *comma = strchr(p, ',');
		const char *end = strchr(line, '\n');

		if (end == NULL)
		{
			*error = pstrdup("the resolver ended before it answered");
			return KS_RESOLVE_FAILED;
		}
		if (line[0] == '!')
		{
			int			hostlen = comma ? (int) (comma - p) : (int) strlen(p);

			*error = psprintf("could not translate host name \"%.*s\" to address: %.*s",
							  hostlen, p, (int) (end - line - 1), line + 1);
			return KS_RESOLVE_FAILED;
		}
		appendBinaryStringInfo(&addrs, line, end - line);
		line = end + 1;
		if (comma == NULL)
			break;
		appendStringInfoChar(&addrs, ',');
		p = comma + 1;
	}
	*hostaddr = addrs.data;
	return KS_RESOLVE_DONE;
}

/* End the resolution, if under way: the child is killed and reaped. */
void
ks_resolve_stop(KsResolver *r)
{
	int			status;

	/* The pipe is open only while the child is there (zeroed: neither). */
	if (r->pid <= 0)
		return;
	close(r->fd);
	r->fd = -1;
	kill(r->pid, SIGKILL);
	while (waitpid(r->pid, &status, 0) < 0 && errno == EINTR)
		;
	r->pid = 0;
}
