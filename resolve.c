/*-------------------------------------------------------------------------
 *
 * resolve.c
 *		Host names of foreign servers resolved without blocking the caller.
 *
 * libpq resolves a host name with getaddrinfo(), which blocks for as long
 * as the resolver takes, with no timeout and no way to cancel it: a slow
 * name server would hold a call past kill_session.node_timeout, and past
 * a cancel.  So the names are resolved first, by a child process that
 * writes every address of each name to a pipe and exits.  The caller waits
 * for the pipe in the same wait as its connections, bounded by the call's
 * deadline and ended by any interrupt.  libpq then gets the addresses as
 * hostaddr next to the names, which it still uses for TLS and for its
 * password file: a name with k addresses becomes k entries of the host
 * list, the name repeated, each with one address (and its port, when the
 * port list has one per host), so that libpq still tries every address in
 * turn, as it would have.  Addresses and socket directories need no child,
 * and neither does a server that has a hostaddr option.
 *
 * The child runs only getaddrinfo() and write(): it blocks every signal,
 * closes every descriptor but its pipe (the client's socket, the kept
 * connections and the postmaster's pipes are not kept open by it), takes
 * no lock and leaves with _exit(), so none of the server's exit callbacks
 * run in it.  It is the pattern of COPY ... PROGRAM, which forks from a
 * backend too.  It shares the backend's memory mappings, shared memory
 * included, until it exits, so it must never outlive the backend: a child
 * is killed and reaped as soon as it is no longer wanted (the answer read,
 * the call failed, cancelled or timed out), and the backend's
 * before_shmem_exit callback kills and reaps any child still there when
 * the backend exits, however it exits (a FATAL from pg_terminate_backend
 * or a kill of the session, the postmaster's death).  Should the backend
 * die without running it (SIGKILL, a crash), the child has asked the
 * kernel for SIGKILL at its parent's death (PR_SET_PDEATHSIG) right after
 * the fork, and it checks that its parent is still the backend that forked
 * it, in case that happened before it asked.
 *
 * fork() can fail: with ENOMEM under vm.overcommit_memory = 2 when the
 * commit limit cannot take a copy of the backend's private memory, or with
 * EAGAIN at a process limit.  The call then fails with 08001 "could not
 * connect to node N", DETAIL "Could not start resolving its host name:"
 * and the system's message, with a HINT to give the server a hostaddr
 * option, which needs no child.
 *
 * A leaf: it calls no other file of the project.
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "compat.h"
#include "storage/ipc.h"
#include "utils/memutils.h"

#include "resolve.h"

/*
 * The children of this backend not yet reaped, kept by ks_resolve_start()
 * and ks_resolve_stop() for the exit callback.  Pids, not pointers to the
 * callers' KsResolvers, which live in memory contexts that an error may
 * reset; a child's pid is not reused before this backend reaps it.
 */
static pid_t *ks_children = NULL;
static int	ks_nchildren = 0;
static int	ks_maxchildren = 0;
static bool ks_exit_registered = false;

/* Kill and reap child pid. */
static void
ks_reap(pid_t pid)
{
	int			status;

	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
}

/*
 * before_shmem_exit callback: no child outlives the backend, whatever
 * ended it.  A FATAL does not unwind to the callers' PG_FINALLY blocks,
 * which stop the children on every other path.
 */
static void
ks_resolve_at_exit(int code, Datum arg)
{
	while (ks_nchildren > 0)
		ks_reap(ks_children[--ks_nchildren]);
}

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

/* The number of entries of a libpq list: one more than its commas. */
static int
ks_list_length(const char *list)
{
	int			n = 1;

	for (; *list != '\0'; list++)
		n += (*list == ',');
	return n;
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
 * Close every descriptor of the child but keep: the backend's client
 * socket, its kept connections, the postmaster's pipes and the log are
 * not the child's to hold open.  Standard input, output and error are
 * /dev/null again, so that nothing the resolver library writes can land in
 * a file it opened.
 */
static void
ks_child_close_all(int keep)
{
	int			fd;

	if ((keep > 0 && close_range(0, keep - 1, 0) != 0) ||
		close_range(keep + 1, ~0U, 0) != 0)
	{
		/* A kernel without close_range(): one by one. */
		long		max = sysconf(_SC_OPEN_MAX);

		for (fd = 0; fd < (max > 0 ? max : 65536); fd++)
		{
			if (fd != keep)
				close(fd);
		}
	}
	fd = open("/dev/null", O_RDWR);
	while (fd >= 0 && fd < 3)
		fd = dup(fd);
	if (fd >= 3)
		close(fd);
}

/*
 * The child: one line per entry of hosts, in order.  For a name, each of
 * its addresses once, in the resolver's order, separated by spaces, or
 * "!" and why it could not be resolved; for an address, itself; for an
 * entry that needs none (the default, a socket directory), nothing.
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
			struct addrinfo *ai;
			int			rc;
			int			naddrs = 0;

			memcpy(host, p, len);
			host[len] = '\0';
			hints.ai_family = AF_UNSPEC;
			hints.ai_socktype = SOCK_STREAM;
			rc = getaddrinfo(host, NULL, &hints, &res);
			for (ai = rc == 0 ? res : NULL; ai != NULL; ai = ai->ai_next)
			{
				struct addrinfo *seen;

				/* An address the list already had is left out. */
				for (seen = res; seen != ai; seen = seen->ai_next)
				{
					if (seen->ai_addrlen == ai->ai_addrlen &&
						memcmp(seen->ai_addr, ai->ai_addr, ai->ai_addrlen) == 0)
						break;
				}
				if (seen != ai ||
					getnameinfo(ai->ai_addr, ai->ai_addrlen, line,
								sizeof(line), NULL, 0, NI_NUMERICHOST) != 0)
					continue;
				if (naddrs++ > 0)
					ks_child_write(fd, " ", 1);
				ks_child_write(fd, line, strlen(line));
			}
			line[0] = '\0';
			if (naddrs == 0)
				snprintf(line, sizeof(line), "!%s",
						 rc != 0 ? gai_strerror(rc) : "no address");
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
	pid_t		parent = getpid();
	int			fds[2];
	int			fork_errno;
	sigset_t	all,
				old_mask;

	r->pid = 0;
	r->fd = -1;
	initStringInfo(&r->answer);

	/* Room for the child, before there is a child to lose to an error. */
	if (!ks_exit_registered)
	{
		before_shmem_exit(ks_resolve_at_exit, (Datum) 0);
		ks_exit_registered = true;
	}
	if (ks_nchildren == ks_maxchildren)
	{
		int			max = Max(ks_maxchildren * 2, 4);

		ks_children = ks_children == NULL ?
			MemoryContextAlloc(TopMemoryContext, max * sizeof(pid_t)) :
			repalloc(ks_children, max * sizeof(pid_t));
		ks_maxchildren = max;
	}

	if (pipe2(fds, O_CLOEXEC) != 0)
		return false;

	/*
	 * The child starts with every signal blocked: it shares the backend's
	 * process group, to which a cancel or a termination of the backend is
	 * sent, and the backend's handlers until it blocks them itself.
	 */
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, &old_mask);
	r->pid = fork();
	fork_errno = errno;
	if (r->pid != 0)
		sigprocmask(SIG_SETMASK, &old_mask, NULL);
	if (r->pid < 0)
	{
		int			save_errno = fork_errno;

		r->pid = 0;
		close(fds[0]);
		close(fds[1]);
		errno = save_errno;
		return false;
	}
	if (r->pid == 0)
	{
		/*
		 * Killed when the backend dies, even by SIGKILL; if it died before
		 * this, the parent is another process already.
		 */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(1);
		ks_child_close_all(fds[1]);
		ks_resolve_child(fds[1], hosts);
	}
	ks_children[ks_nchildren++] = r->pid;
	close(fds[1]);
	r->fd = fds[0];
	if (fcntl(r->fd, F_SETFL, O_NONBLOCK) != 0)
	{
		int			save_errno = errno;

		ks_resolve_stop(r);
		errno = save_errno;
		return false;
	}
	return true;
}

/*
 * Take what the child has written.  When it is all there, *host, *hostaddr
 * and *port are the libpq host, hostaddr and port lists to connect with
 * (*port NULL when ports, the server's port list, is NULL), or *error says
 * which name could not be resolved.  Each entry of hosts becomes as many
 * entries as its name has addresses, and so does its entry of ports when
 * there is one per host (a single port serves them all).  A port list of
 * another length, which libpq refuses, is left as it is, and each name
 * then keeps only its first address, so that libpq's own error counts the
 * hosts that were given.
 */
KsResolveResult
ks_resolve_read(KsResolver *r, const char *hosts, const char *ports,
				char **host, char **hostaddr, char **port, char **error)
{
	char		buf[1024];
	StringInfoData hostlist;
	StringInfoData addrs;
	StringInfoData portlist;
	const char *p = hosts;
	const char *pp = ports;
	const char *line;
	int			nhosts = ks_list_length(hosts);
	int			nports = ports == NULL || ports[0] == '\0' ? 0 :
		ks_list_length(ports);
	bool		each_port = nports > 1 && nports == nhosts;
	bool		first_only = nports > 1 && nports != nhosts;
	int			nentries = 0;

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
	initStringInfo(&hostlist);
	initStringInfo(&addrs);
	initStringInfo(&portlist);
	line = r->answer.data;
	for (;;)
	{
		const char *comma = strchr(p, ',');
		const char *end = strchr(line, '\n');
		int			hostlen = comma ? (int) (comma - p) : (int) strlen(p);
		const char *pcomma = each_port ? strchr(pp, ',') : NULL;
		int			portlen = !each_port ? 0 :
			pcomma ? (int) (pcomma - pp) : (int) strlen(pp);
		const char *a = line;

		if (end == NULL)
		{
			*error = pstrdup("the resolver ended before it answered");
			return KS_RESOLVE_FAILED;
		}
		if (line[0] == '!')
		{
			*error = psprintf("could not translate host name \"%.*s\" to address: %.*s",
							  hostlen, p, (int) (end - line - 1), line + 1);
			return KS_RESOLVE_FAILED;
		}

		/* Each address (an empty line is one empty entry). */
		for (;;)
		{
			const char *space = memchr(a, ' ', end - a);
			const char *aend = space ? space : end;

			if (nentries++ > 0)
			{
				appendStringInfoChar(&hostlist, ',');
				appendStringInfoChar(&addrs, ',');
				if (each_port)
					appendStringInfoChar(&portlist, ',');
			}
			appendBinaryStringInfo(&hostlist, p, hostlen);
			appendBinaryStringInfo(&addrs, a, aend - a);
			if (each_port)
				appendBinaryStringInfo(&portlist, pp, portlen);
			if (space == NULL || first_only)
				break;
			a = space + 1;
		}
		line = end + 1;
		if (comma == NULL)
			break;
		p = comma + 1;
		if (each_port)
			pp = pcomma + 1;
	}
	*host = hostlist.data;
	*hostaddr = addrs.data;
	*port = each_port ? portlist.data : ports == NULL ? NULL : pstrdup(ports);
	return KS_RESOLVE_DONE;
}

/* End the resolution, if under way: the child is killed and reaped. */
void
ks_resolve_stop(KsResolver *r)
{
	int			i;

	/* The pipe is open only while the child is there (zeroed: neither). */
	if (r->pid <= 0)
		return;
	close(r->fd);
	r->fd = -1;
	ks_reap(r->pid);
	for (i = 0; i < ks_nchildren; i++)
	{
		if (ks_children[i] == r->pid)
		{
			ks_children[i] = ks_children[--ks_nchildren];
			break;
		}
	}
	r->pid = 0;
}
