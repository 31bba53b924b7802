/*-------------------------------------------------------------------------
 *
 * kill.c
 *		kill_session() and kill_sessions(): end client sessions named by
 *		their session IDs, and wait until they are gone.
 *
 * The kill is SIGTERM, as pg_terminate_backend() sends it: the target's
 * open transaction rolls back, its locks are released and its client gets
 * FATAL 57P01.  The signal is sent while the registry lock is held and the
 * target's slot still names the session, so it can only reach that session
 * (see registry.c).  Then the caller waits until the process is gone.
 *
 * This file owns the kill and its wait.  It must not be called by
 * action.c, the forwarding files or the leaves.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  kill.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>
#include <poll.h>
#include <time.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/pmsignal.h"
#include "utils/array.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "compat.h"
#include "kill_session.h"
#include "registry.h"
#include "session_id.h"

PG_FUNCTION_INFO_V1(kill_session);
PG_FUNCTION_INFO_V1(kill_sessions);

/*
 * A process that has exited is reaped by the postmaster within microseconds:
 * yield the CPU to it for up to this long, then sleep in steps.
 */
#define KS_REAP_SPIN_US			2000
#define KS_REAP_STEP_US			100

static bool
ks_process_gone(pid_t pid)
{
	return kill(pid, 0) != 0 && errno == ESRCH;
}

/*
 * Wait until pid is gone -- PostgreSQL's own test: kill(pid, 0) fails --
 * or timeout_ms have passed.  Returns whether it is gone.
 *
 * With a pidfd the wait wakes as the process exits; it then yields the CPU
 * until the postmaster has reaped it, which takes microseconds.  Without one (kernels before 5.3) it
 * polls every millisecond.  Interrupts are served throughout, so the wait
 * can be cancelled; the wait set is released either way, the pidfd by the
 * caller.
 */
bool
ks_wait_gone(pid_t pid, int pidfd, int timeout_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   timeout_ms);
	WaitEventSet *volatile set = NULL;
	volatile bool exited = false;
	volatile TimestampTz exited_at = 0;
	volatile bool gone = false;

	PG_TRY();
	{
		if (pidfd >= 0)
		{
			set = ks_create_wait_event_set(3);
			AddWaitEventToSet(set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
			AddWaitEventToSet(set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
			AddWaitEventToSet(set, WL_SOCKET_READABLE, pidfd, NULL, NULL);
		}

		for (;;)
		{
			long		remaining;

			CHECK_FOR_INTERRUPTS();
			if (ks_process_gone(pid))
			{
				gone = true;
				break;
			}
			remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
														deadline);
			if (remaining <= 0)
				break;

			if (exited)
			{
				if (GetCurrentTimestamp() - exited_at < KS_REAP_SPIN_US)
					sched_yield();
				else
					pg_usleep(KS_REAP_STEP_US);
			}
			else if (set != NULL)
			{
				WaitEvent	event;

				if (WaitEventSetWait(set, remaining, &event, 1,
									 WAIT_EVENT_BACKEND_TERMINATION) == 1)
				{
					if (event.events & WL_LATCH_SET)
						ResetLatch(MyLatch);
					if (event.events & WL_SOCKET_READABLE)
					{
						exited = true;
						exited_at = GetCurrentTimestamp();
					}
				}
			}
			else
			{
				(void) WaitLatch(MyLatch,
								 WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
								 Min(remaining, 1),
								 WAIT_EVENT_BACKEND_TERMINATION);
				ResetLatch(MyLatch);
			}
		}
	}
	PG_FINALLY();
	{
		if (set != NULL)
			FreeWaitEventSet(set);
	}
	PG_END_TRY();

	return gone;
}

/*
 * End the client session with ID sid: the one function behind every front
 * door.  Checks the caller's privilege, signals the session and waits for it
 * as kill_session.wait_timeout says.  Returns true once the session is gone
 * (or, for the caller's own session or with no wait, once it is marked);
 * false with a WARNING when it did not end in time.
 */
bool
ks_kill_session(uint32 sid, KsHistAction action, const char *reason)
{
	bool		there;

	return ks_kill_if_there(sid, action, reason, false, &there);
}

/*
 * The same, for a session that may have gone (missing_ok): then false,
 * and *there false.
 */
bool
ks_kill_if_there(uint32 sid, KsHistAction action, const char *reason,
				 bool missing_ok, bool *there)
{
	MemoryContext context = CurrentMemoryContext;
	KsSession	target;
	KsKiller	me;
	int			pidfd = -1;
	int			wait_ms = ks_wait_timeout_ms();
	bool		self;
	volatile bool signalled = false;
	volatile bool gone = true;

	ks_check_loaded();
	ks_check_privilege(KS_KILL_WHAT);
	*there = ks_aim(sid, KS_KILL_WHAT, missing_ok, reason, &target, &me);
	if (!*there)
		return false;
	self = (target.pid == MyProcPid);
	ks_record_begin(action, sid, &target, &me);

	/*
	 * From here the pidfd is closed however the call ends: the LOG line
	 * serves interrupts, so a cancel or statement_timeout can end the call
	 * right there, as well as during the wait.  An error completes the row.
	 */
	PG_TRY();
	{
		ks_mark(sid, &target, KS_KILL, &me, self ? 0 : SIGTERM, &pidfd, NULL);
		signalled = true;
		ks_log_action(sid, &target, "killed", &me);
		if (self)
			ks_end_after_statement();
		else if (wait_ms > 0)
			gone = ks_wait_gone(target.pid, pidfd, wait_ms);
	}
	PG_CATCH();
	{
		if (pidfd >= 0)
			close(pidfd);
		ks_record_error(&me, action, signalled, false, context);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (pidfd >= 0)
		close(pidfd);

	if (gone && !self && wait_ms > 0)
	{
		ks_record_end(&me, action, KS_O_EXITED, NULL);
		return true;
	}
	if (gone)
	{
		ks_record_end(&me, action, KS_O_MARKED,
					  self ? "it ends after the statement" : "no wait: kill_session.wait_timeout is 0");
		return true;
	}
	ks_record_end(&me, action, KS_O_MARKED,
				  psprintf("it did not end within %d ms", wait_ms));
	ereport(WARNING,
			(errmsg("session " INT64_FORMAT " marked for kill", ks_global_id(sid)),
			 errdetail("The session did not end within %d ms; it will end as soon as it can.",
					   wait_ms)));
	return false;
}

/*
 * kill_session(session text, immediate boolean DEFAULT false,
 *				reason text DEFAULT NULL)
 *
 * The SQL form of ALTER SYSTEM KILL SESSION 'session' [IMMEDIATE].  The
 * serial# and immediate are accepted for compatibility and ignored; the
 * reason is told to the session, logged and kept in the history.
 */
Datum
kill_session(PG_FUNCTION_ARGS)
{
	uint32		sid;
	Datum		result;
	const char *reason;

	ks_check_loaded();
	reason = ks_reason_arg(fcinfo, 2);
	if (ks_session_arg(fcinfo, 0, KS_KILL_WHAT, KS_H_KILL, reason, &sid,
					   NULL, NULL, &result))
		return result;
	PG_RETURN_BOOL(ks_kill_session(sid, KS_H_KILL, reason));
}

/*
 * Wait until every process in pids[0..n) is gone, or timeout_ms have
 * passed; gone[i] says which are.  One ppoll() on the pidfds of those still
 * running wakes as each exits; its pidfd is then closed (and set to -1)
 * and the process looked at every 100 us until the postmaster has reaped
 * it, so that the wait never spins while others are still exiting.  A
 * process without a pidfd is looked at every 100 us too.  Signals are
 * blocked from each interrupt check to the ppoll(), which unblocks them
 * as it starts waiting: a cancel that arrives in between interrupts it at
 * once, and is served by the next check.
 */
static void
ks_wait_for_all(const pid_t *pids, int *pidfds, bool *gone, int n,
				int timeout_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   timeout_ms);
	struct pollfd *fds = palloc(sizeof(struct pollfd) * Max(n, 1));
	int		   *fd_owner = palloc(sizeof(int) * Max(n, 1));
	sigset_t	all_signals;
	sigset_t	unblocked;

	sigfillset(&all_signals);
	sigprocmask(SIG_SETMASK, NULL, &unblocked);
	for (;;)
	{
		int			nfds = 0;
		bool		reaping = false;
		long		remaining;
		struct timespec step;
		int			i;

		sigprocmask(SIG_SETMASK, &unblocked, NULL);
		CHECK_FOR_INTERRUPTS();
		if (!PostmasterIsAlive())
			proc_exit(1);
		sigprocmask(SIG_BLOCK, &all_signals, NULL);
		for (i = 0; i < n; i++)
		{
			if (gone[i])
				continue;
			if (pidfds[i] >= 0)
			{
				fds[nfds].fd = pidfds[i];
				fds[nfds].events = POLLIN;
				fds[nfds].revents = 0;
				fd_owner[nfds++] = i;
			}
			else if (ks_process_gone(pids[i]))
				gone[i] = true;
			else
				reaping = true;
		}
		if (nfds == 0 && !reaping)
			break;
		remaining = TimestampDifferenceMilliseconds(GetCurrentTimestamp(),
													deadline);
		if (remaining <= 0)
			break;
		if (reaping)
		{
			step.tv_sec = 0;
			step.tv_nsec = KS_REAP_STEP_US * 1000L;
		}
		else
		{
			step.tv_sec = remaining / 1000;
			step.tv_nsec = (remaining % 1000) * 1000000L;
		}
		if (ppoll(fds, nfds, &step, &unblocked) > 0)
		{
			for (i = 0; i < nfds; i++)
			{
				if (fds[i].revents != 0)
				{
					/* Exited: now only its reaping is waited for. */
					close(pidfds[fd_owner[i]]);
					pidfds[fd_owner[i]] = -1;
				}
			}
		}
	}
	sigprocmask(SIG_SETMASK, &unblocked, NULL);
	pfree(fds);
	pfree(fd_owner);
}

/* An ID of kill_sessions()' list and where it stands there. */
typedef struct KsListed
{
	int64		id;
	int			index;
} KsListed;

static int
ks_listed_cmp(const void *a, const void *b)
{
	const KsListed *la = a;
	const KsListed *lb = b;

	if (la->id != lb->id)
		return (la->id > lb->id) - (la->id < lb->id);
	return (la->index > lb->index) - (la->index < lb->index);
}

/*
 * first[i]: where the ID at i first stands in ids[0..n); i itself but for
 * an ID listed again.
 */
static void
ks_first_listed(const Datum *ids, int n, int *first)
{
	KsListed   *sorted = palloc(sizeof(KsListed) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
	{
		sorted[i].id = DatumGetInt64(ids[i]);
		sorted[i].index = i;
	}
	qsort(sorted, n, sizeof(KsListed), ks_listed_cmp);
	for (i = 0; i < n; i++)
		first[sorted[i].index] = (i > 0 && sorted[i].id == sorted[i - 1].id) ?
			first[sorted[i - 1].index] : sorted[i].index;
	pfree(sorted);
}

/*
 * The calls of kill_sessions() to other nodes: one per node, with every ID
 * of that node (listed once); node_of[i] is the call of the ID at i, or -1
 * for one of this server.
 */
static KsNodeCall *
ks_kill_calls(FunctionCallInfo fcinfo, const Datum *ids, const int *first,
			  int n, const char *reason, int *node_of, int *ncalls)
{
	KsNodeCall *calls = palloc0(sizeof(KsNodeCall) * Max(n, 1));
	StringInfoData *lists = palloc(sizeof(StringInfoData) * Max(n, 1));

	/* The whole signature: see ks_forward_call(). */
	char	   *sql = psprintf("SELECT id, killed FROM %s($1::pg_catalog.int8[], $2::pg_catalog.text)",
							   ks_extension_object(fcinfo->flinfo->fn_oid,
												   "kill_sessions"));
	int			i;
	int			c;

	*ncalls = 0;
	for (i = 0; i < n; i++)
	{
		int64		id = DatumGetInt64(ids[i]);
		int			node = ks_id_home(id);

		node_of[i] = -1;
		if (node == 0)
			continue;
		for (c = 0; c < *ncalls && calls[c].node != node; c++)
			;
		if (c == *ncalls)
		{
			/* No directory entry: say where the session is, before any kill. */
			calls[c].server = ks_node_of_session(fcinfo->flinfo->fn_oid, id);
			calls[c].node = node;
			calls[c].fn = fcinfo->flinfo->fn_oid;
			calls[c].object = fcinfo->flinfo->fn_oid;
			calls[c].sql = sql;
			calls[c].nparams = 2;
			initStringInfo(&lists[c]);
			(*ncalls)++;
		}
		node_of[i] = c;
		if (first[i] == i)
			appendStringInfo(&lists[c], "%s" INT64_FORMAT,
							 lists[c].len > 0 ? "," : "", id);
	}
	for (c = 0; c < *ncalls; c++)
	{
		const char **params = palloc(sizeof(char *) * 2);

		params[0] = psprintf("{%s}", lists[c].data);
		params[1] = reason;
		calls[c].params = params;
		calls[c].action = psprintf("%ss %s", KS_KILL_WHAT, lists[c].data);
		calls[c].wait_ms = ks_wait_timeout_ms();
	}
	return calls;
}

/*
 * What a node answered for id: killed or not; false if it refused or did
 * not say, *unknown if the call was sent and its answer lost (08007), when
 * the node may have killed it or not.
 */
static bool
ks_killed_there(const KsNodeCall *call, int64 id, bool *unknown)
{
	char	   *want = psprintf(INT64_FORMAT, id);
	int			r;

	*unknown = call->failed &&
		call->sqlerrcode == ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN;
	if (call->failed || call->ncols != 2)
		return false;
	for (r = 0; r < call->nrows; r++)
	{
		const char *got = ks_call_value(call, r, 0);
		const char *killed = ks_call_value(call, r, 1);

		if (got != NULL && strcmp(got, want) == 0)
			return killed != NULL && strcmp(killed, "t") == 0;
	}
	return false;
}

/*
 * kill_sessions(ids bigint[], reason text DEFAULT NULL)
 *		returns table (id bigint, killed boolean)
 *
 * Many kills at once: every session is checked first (an invalid ID or a
 * superuser's session stops the call before any kill), then all are
 * signalled, then waited for together within one kill_session.wait_timeout.
 * The caller's own session, if listed, ends after the statement, as
 * kill_session() does.  A row is false only with its reason: a NOTICE for
 * a session that does not exist (or ended on its own meanwhile), a WARNING
 * for a signal that failed or a session that did not end in time.  An ID
 * listed again is killed once, and each of its rows shows that kill.
 *
 * The IDs of other nodes go to their nodes, one call per node, all sent
 * before the kills here begin, so that every node works at once.  Each node
 * checks its own IDs before it kills any; a node that fails or refuses
 * gives a WARNING with its error, and its rows are false; a node whose
 * answer was lost after the call was sent (08007), NULL: unknown.
 */
Datum
kill_sessions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ArrayType  *ids;
	Datum	   *elems;
	bool	   *elem_nulls;
	int			n;
	KsSession  *targets;
	KsKiller   *mes;
	const char *reason;
	pid_t	   *pids;
	int		   *pidfds;
	int		   *first;
	int		   *node_of;
	bool	   *listed_again;
	bool	   *found;
	bool	   *marked;
	bool	   *gone;
	KsNodeCall *calls;
	int			ncalls;
	int			not_gone = 0;
	int			wait_ms = ks_wait_timeout_ms();
	MemoryContext context = CurrentMemoryContext;
	int			i;

	ks_check_loaded();
	reason = ks_reason_arg(fcinfo, 1);
	if (PG_ARGISNULL(0))
		ks_report_invalid();
	ids = PG_GETARG_ARRAYTYPE_P(0);
	if (ARR_NDIM(ids) > 1)
		ks_report_invalid();
	deconstruct_array(ids, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
					  TYPALIGN_DOUBLE, &elems, &elem_nulls, &n);
	InitMaterializedSRF(fcinfo, 0);

	targets = palloc(sizeof(KsSession) * Max(n, 1));
	mes = palloc0(sizeof(KsKiller) * Max(n, 1));
	pids = palloc0(sizeof(pid_t) * Max(n, 1));
	pidfds = palloc(sizeof(int) * Max(n, 1));
	first = palloc(sizeof(int) * Max(n, 1));
	node_of = palloc(sizeof(int) * Max(n, 1));
	listed_again = palloc0(sizeof(bool) * Max(n, 1));
	found = palloc0(sizeof(bool) * Max(n, 1));
	marked = palloc0(sizeof(bool) * Max(n, 1));
	gone = palloc0(sizeof(bool) * Max(n, 1));

	/* Every ID is valid and may be killed, before anything is killed. */
	for (i = 0; i < n; i++)
	{
		pidfds[i] = -1;
		if (elem_nulls[i] || !ks_id_valid(DatumGetInt64(elems[i])))
			ks_report_invalid();
	}
	ks_first_listed(elems, n, first);
	calls = ks_kill_calls(fcinfo, elems, first, n, reason, node_of, &ncalls);
	ks_check_privilege(KS_KILL_WHAT);
	for (i = 0; i < n; i++)
	{
		int64		id = DatumGetInt64(elems[i]);

		if (first[i] != i)
		{
			/* One NOTICE for each ID listed again. */
			if (!listed_again[first[i]])
				ereport(NOTICE,
						(errmsg("session ID " INT64_FORMAT " is listed more than once", id),
						 errdetail("It is killed once; each of its rows shows that kill.")));
			listed_again[first[i]] = true;
			continue;
		}
		if (node_of[i] >= 0)
			continue;
		found[i] = ks_aim(ks_id_local(id), KS_KILL_WHAT, true, reason,
						  &targets[i], &mes[i]);
		if (!found[i])
			ereport(NOTICE,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("session ID " INT64_FORMAT " does not exist", id)));
	}

	/* The rows of the IDs sent to other nodes, each node writing its own. */
	for (i = 0; i < n; i++)
	{
		if (first[i] == i && node_of[i] >= 0)
		{
			ks_actor(reason, &mes[i]);
			ks_record_begin_forwarded(KS_H_KILL, DatumGetInt64(elems[i]),
									  ks_id_node(DatumGetInt64(elems[i])),
									  &mes[i]);
		}
	}

	PG_TRY();
	{
		ks_nodes_send(calls, ncalls);
		ks_record_hold_graph();
		for (i = 0; i < n; i++)
		{
			bool		self;

			if (!found[i])
				continue;
			self = (targets[i].pid == MyProcPid);
			ks_record_begin(KS_H_KILL, targets[i].sid, &targets[i], &mes[i]);
			switch (ks_registry_mark_and_signal(targets[i].sid, targets[i].pid,
												KS_KILL, &mes[i],
												self ? 0 : SIGTERM,
												&pidfds[i], NULL))
			{
				case KS_MARK_DONE:
					break;
				case KS_MARK_GONE:
					/* It ended meanwhile, on its own. */
					found[i] = false;
					ks_record_end(&mes[i], KS_H_KILL, KS_O_NOT_RUNNING,
								  "the session had ended");
					ereport(NOTICE,
							(errcode(ERRCODE_UNDEFINED_OBJECT),
							 errmsg("session ID " INT64_FORMAT " does not exist",
									ks_global_id(targets[i].sid))));
					continue;
				case KS_MARK_SIGNAL_FAILED:
					found[i] = false;
					ks_record_end(&mes[i], KS_H_KILL, KS_O_REFUSED,
								  psprintf("could not send signal: %m"));
					ereport(WARNING,
							(errcode(ERRCODE_SYSTEM_ERROR),
							 errmsg("could not send signal to process %d: %m",
									(int) targets[i].pid),
							 errdetail("Session " INT64_FORMAT " was not killed.",
									   ks_global_id(targets[i].sid))));
					continue;
			}
			pids[i] = targets[i].pid;
			marked[i] = true;
			if (self)
			{
				ks_end_after_statement();
				gone[i] = true;
			}
		}
		ks_record_release_graph();
		for (i = 0; i < n; i++)
		{
			if (found[i])
				ks_log_action(targets[i].sid, &targets[i], "killed", &mes[i]);
			else
				gone[i] = true; /* nothing to wait for */
		}
		if (wait_ms > 0)
			ks_wait_for_all(pids, pidfds, gone, n, wait_ms);
		ks_nodes_receive(calls, ncalls);
	}
	PG_CATCH();
	{
		ks_record_release_graph();
		for (i = 0; i < n; i++)
		{
			if (pidfds[i] >= 0)
				close(pidfds[i]);
			if (marked[i] || (first[i] == i && node_of[i] >= 0))
				ks_record_error(&mes[i], KS_H_KILL, marked[i], !marked[i], context);
		}
		ks_nodes_close(calls, ncalls);
		PG_RE_THROW();
	}
	PG_END_TRY();
	for (i = 0; i < n; i++)
	{
		if (pidfds[i] >= 0)
			close(pidfds[i]);
		if (marked[i])
			ks_record_end(&mes[i], KS_H_KILL,
						  gone[i] && wait_ms > 0 && pids[i] != MyProcPid ?
						  KS_O_EXITED : KS_O_MARKED,
						  pids[i] == MyProcPid ? "it ends after the statement" :
						  wait_ms == 0 ? "no wait: kill_session.wait_timeout is 0" :
						  gone[i] ? NULL :
						  psprintf("it did not end within %d ms", wait_ms));
		else if (first[i] == i && node_of[i] >= 0)
		{
			const KsNodeCall *call = &calls[node_of[i]];
			bool		unknown;
			bool		killed = ks_killed_there(call, DatumGetInt64(elems[i]),
												 &unknown);

			ks_record_end(&mes[i], KS_H_KILL,
						  unknown ? KS_O_UNKNOWN :
						  killed ? KS_O_DONE :
						  call->failed ? KS_O_REFUSED : KS_O_NOT_DONE,
						  call->failed && call->message ?
						  psprintf("node %d: %s", call->node, call->message) :
						  psprintf("node %d answered %s", call->node,
								   killed ? "true" : "false"));
		}
	}
	ks_nodes_close(calls, ncalls);

	for (i = 0; i < ncalls; i++)
	{
		if (calls[i].failed)
			ks_node_report(&calls[i], WARNING);
	}
	for (i = 0; i < n; i++)
	{
		Datum		values[2];
		bool		nulls[2] = {false, false};
		int			k = first[i];
		bool		killed;

		if (node_of[k] >= 0)
			killed = ks_killed_there(&calls[node_of[k]], DatumGetInt64(elems[k]),
									 &nulls[1]);
		else
		{
			killed = found[k] && (gone[k] || wait_ms == 0);
			if (found[k] && !killed && k == i)
				not_gone++;
		}
		values[0] = elems[i];
		values[1] = BoolGetDatum(killed);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	if (not_gone > 0)
		ereport(WARNING,
				(errmsg_plural("%d session marked for kill",
							   "%d sessions marked for kill",
							   not_gone, not_gone),
				 errdetail_plural("It did not end within %d ms; it will end as soon as it can.",
								  "They did not end within %d ms; they will end as soon as they can.",
								  not_gone, wait_ms)));
	return (Datum) 0;
}
