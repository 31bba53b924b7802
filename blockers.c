/*-------------------------------------------------------------------------
 *
 * blockers.c
 *		kill_blockers(): release one waiting session by ending the heads of
 *		the chains that hold it.
 *
 * From one read of the lock graph (the read v$session makes) it finds the
 * heads of the chains that hold the named waiter: the processes it waits
 * for, through every process they wait for in turn, that wait for nothing.
 * A head that waits for its client is ended as the policy ends one, the
 * session deciding (policy.c's ks_end_idle()): only if it is still idle.
 * A head that runs a statement is left alone under only_idle; otherwise it
 * is killed, or with cancel_first its statement is cancelled first and it
 * is killed only if the waiter is still held by it after
 * kill_session.wait_timeout (pg_repack's order).  Heads that cannot be
 * acted on come back with the reason: a prepared transaction, a process
 * that is no client session, a superuser's session for a caller that is
 * not one.  A waiter in a deadlock cycle is refused.
 *
 * The call returns once the waiter is held by none of them: it got its
 * lock, or waits for others now, which come back as rows too.
 *
 * This file owns the function; it acts through kill.c, cancel.c and
 * policy.c, and none of them calls it.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  blockers.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "kill_session.h"
#include "lockgraph.h"

PG_FUNCTION_INFO_V1(kill_blockers);

#define KS_BLOCKERS_WHAT	"kill session"

/* One row of the answer. */
typedef struct KsHeadRow
{
	int64		id;				/* its session ID, 0 if none */
	int			pid;			/* 0: a prepared transaction */
	const char *action;			/* kill, cancel, cancel, kill, or none */
	bool		done;
	const char *why_not;		/* NULL when done */
} KsHeadRow;

/* The graph read now, with every session. */
static void
ks_read_graph(KsLockGraph *graph, KsSession **sessions, int *nsessions)
{
	*sessions = ks_registry_snapshot(nsessions, true);
	ks_lock_graph_read(graph, *sessions, *nsessions);
}

/*
 * The heads of the chains that hold pid in graph, each once: *cycle is set
 * when a chain leads back to pid (*in_cycle too), or no head can be
 * reached at all.  The waiting processes passed, but pid, are in *passed,
 * for naming a cycle.
 */
static int *
ks_heads_of(const KsLockGraph *graph, int pid, int *nheads, bool *cycle,
			bool *in_cycle, StringInfo passed)
{
	const KsGraphNode *start = ks_lock_graph_node(graph, pid);
	int		   *queue = palloc(sizeof(int) * Max(graph->nnodes, 1));
	bool	   *seen = palloc0(sizeof(bool) * Max(graph->nnodes, 1));
	int		   *heads = palloc(sizeof(int) * Max(graph->nnodes, 1));
	int			qhead = 0;
	int			qtail = 0;
	int			i;

	*nheads = 0;
	*cycle = false;
	*in_cycle = false;
	if (start == NULL || start->nblocks == 0)
		return heads;
	queue[qtail++] = start - graph->nodes;
	seen[start - graph->nodes] = true;
	while (qhead < qtail)
	{
		const KsGraphNode *node = &graph->nodes[queue[qhead++]];

		if (node == start)
			;
		else if (node->sid != 0)
			appendStringInfo(passed, "%ssession " INT64_FORMAT,
							 passed->len > 0 ? ", " : "", node->sid);
		else
			appendStringInfo(passed, "%sprocess %d",
							 passed->len > 0 ? ", " : "", node->pid);
		for (i = 0; i < node->nblocks; i++)
		{
			const KsBlock *b = &graph->blocks[node->first_block + i];
			int			next = b->blocker_node;
			const KsGraphNode *blocker = &graph->nodes[next];

			if (blocker == start)
				*cycle = *in_cycle = true;
			if (seen[next])
				continue;
			seen[next] = true;
			if (blocker->waiting)
				queue[qtail++] = next;
			else
				heads[(*nheads)++] = next;
		}
	}
	if (*nheads == 0)
		*cycle = true;
	return heads;
}

/* Whether pid is held by the process blocker in a graph read now. */
static bool
ks_held_by(int pid, int blocker)
{
	KsLockGraph graph;
	KsSession  *sessions;
	int			nsessions;
	StringInfoData passed;
	int		   *heads;
	int			nheads;
	bool		cycle;
	bool		in_cycle;
	int			i;

	ks_read_graph(&graph, &sessions, &nsessions);
	initStringInfo(&passed);
	heads = ks_heads_of(&graph, pid, &nheads, &cycle, &in_cycle, &passed);
	for (i = 0; i < nheads; i++)
	{
		if (graph.nodes[heads[i]].pid == blocker)
			return true;
	}
	return false;
}

/*
 * Whether pid may still wait for a lock, as its PGPROC says without a
 * lock: false once it was granted (its wait lock is cleared by whoever
 * granted it) or it waits no more.
 */
static bool
ks_may_wait(int pid)
{
	PGPROC	   *proc = BackendPidGetProc(pid);

	return proc != NULL &&
		((*(volatile uint32 *) &proc->wait_event_info) & 0xFF000000) == PG_WAIT_LOCK &&
		*(void *volatile *) &proc->waitLock != NULL;
}

/*
 * Wait until pid is held by blocker no more, or timeout_ms have passed:
 * whether it is free of it.  The lock graph is read when the waiter's
 * PGPROC says it may have been granted, and every 100 ms.
 */
static bool
ks_wait_released(int pid, int blocker, int timeout_ms)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													   timeout_ms);
	TimestampTz next_read = 0;

	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (!ks_may_wait(pid) || now >= next_read)
		{
			if (!ks_held_by(pid, blocker))
				return true;
			next_read = TimestampTzPlusMilliseconds(now, 100);
		}
		if (now >= deadline)
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 1, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/* What a process that is no client session is, for its row. */
static const char *
ks_not_a_session(int pid)
{
	PGPROC	   *proc = BackendPidGetProc(pid);

	if (proc != NULL && (proc->statusFlags & PROC_IS_AUTOVACUUM))
		return "an autovacuum worker: it is not a client session";
	return "not a client session";
}

/* Act on one head: a session of this server, in sessions. */
static void
ks_act_on_head(const KsSession *s, const KsGraphNode *waiter, int waiter_pid,
			   bool only_idle, bool cancel_first, KsHeadRow *row)
{
	KsIdlePeriod period;
	KsSession	target;
	KsKiller	me;
	int			wait_ms = ks_wait_timeout_ms();
	bool		there;

	if ((!OidIsValid(s->roleid) || superuser_arg(s->roleid)) && !superuser())
	{
		row->why_not = "a superuser's session: only superusers may end it";
		return;
	}
	if (ks_idle_period_of(s, &period))
	{
		char	   *detail;

		if (!ks_aim(s->sid, KS_BLOCKERS_WHAT, true, NULL, &target, &me))
		{
			row->why_not = "it had ended";
			return;
		}
		detail = psprintf("kill_blockers() ended session " INT64_FORMAT ", which %s, for %s (pid %d), which waited for its locks.",
						  ks_global_id(s->sid), ks_idle_words(&period),
						  waiter->sid != 0 ?
						  psprintf("session " INT64_FORMAT, waiter->sid) :
						  "the process", waiter_pid);
		row->action = "kill";
		switch (ks_end_idle(&target, &period, &me, detail, Max(wait_ms, 1)))
		{
			case KS_IDLE_END_DONE:
				ks_log_action(s->sid, &target,
							  "ended as an idle blocker by kill_blockers()", &me);
				row->done = true;
				return;
			case KS_IDLE_END_GONE:
				row->action = "none";
				row->why_not = "it had ended";
				return;
			case KS_IDLE_END_LEFT:
				/* Its client spoke: it may have let go, or runs a statement. */
				if (!ks_held_by(waiter_pid, s->pid))
				{
					row->action = "none";
					row->why_not = "it no longer holds the waiter";
					return;
				}
				break;
			case KS_IDLE_END_BUSY:
				row->why_not = "another ask of the session was unanswered";
				return;
			case KS_IDLE_END_NOT_OURS:
				row->why_not = "its SIGINT handler is another library's";
				return;
			case KS_IDLE_END_FAILED:
				row->why_not = "the signal could not be sent";
				return;
			case KS_IDLE_END_NO_ANSWER:
				row->why_not = "it did not answer; it may still end";
				return;
		}
	}

	/* A head that runs a statement (or waits for something else). */
	if (cancel_first)
	{
		bool		stopped = ks_cancel_if_there(s->sid, NULL, &there);

		if (!there)
		{
			row->action = "none";
			row->why_not = "it had ended";
			return;
		}
		row->action = "cancel";
		if (ks_wait_released(waiter_pid, s->pid, wait_ms))
		{
			row->done = true;
			return;
		}
		if (only_idle)
		{
			row->why_not = stopped ?
				"the waiter was still held after the cancel; only_idle kept it from being killed" :
				"its statement did not stop; only_idle kept it from being killed";
			return;
		}
		row->action = "cancel, kill";
	}
	else if (only_idle)
	{
		row->action = "none";
		row->why_not = "it runs a statement (only_idle)";
		return;
	}
	else
		row->action = "kill";
	row->done = ks_kill_if_there(s->sid, KS_H_KILL, NULL, true, &there);
	if (!there)
	{
		row->done = false;
		row->why_not = "it had ended";
	}
	else if (!row->done)
		row->why_not = "it did not end within kill_session.wait_timeout";
}

static void
ks_put_row(ReturnSetInfo *rsinfo, const KsHeadRow *row)
{
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	values[0] = Int64GetDatum(row->id);
	nulls[0] = row->id == 0;
	values[1] = Int32GetDatum(row->pid);
	values[2] = CStringGetTextDatum(row->action);
	values[3] = BoolGetDatum(row->done);
	if (row->why_not != NULL)
		values[4] = CStringGetTextDatum(row->why_not);
	else
		nulls[4] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/* The rows a node answered for a forwarded call, as they came. */
static void
ks_put_forwarded(ReturnSetInfo *rsinfo, const KsNodeCall *call)
{
	int			r;

	if (call->ncols != 5)
		ereport(ERROR,
				(errcode(ERRCODE_PROTOCOL_VIOLATION),
				 errmsg("node %d answered %d columns", call->node, call->ncols)));
	for (r = 0; r < call->nrows; r++)
	{
		KsHeadRow	row;
		const char *id = ks_call_value(call, r, 0);
		const char *pid = ks_call_value(call, r, 1);
		const char *done = ks_call_value(call, r, 3);

		if (pid == NULL || done == NULL || ks_call_value(call, r, 2) == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_PROTOCOL_VIOLATION),
					 errmsg("node %d answered a row without its process", call->node)));
		row.id = id != NULL ? pg_strtoint64(id) : 0;
		row.pid = pg_strtoint32(pid);
		row.action = ks_call_value(call, r, 2);
		row.done = done[0] == 't';
		row.why_not = ks_call_value(call, r, 4);
		ks_put_row(rsinfo, &row);
	}
}

/*
 * kill_blockers(session text, only_idle boolean DEFAULT true,
 *				 cancel_first boolean DEFAULT false)
 * RETURNS TABLE (session_id bigint, pid integer, action text, done boolean,
 *				  why_not text)
 */
Datum
kill_blockers(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	int64		id;
	uint32		sid;
	bool		only_idle;
	bool		cancel_first;
	KsSession	waiter;
	KsLockGraph graph;
	KsSession  *sessions;
	int			nsessions;
	const KsGraphNode *wnode;
	StringInfoData passed;
	int		   *heads;
	int			nheads;
	bool		cycle;
	bool		in_cycle;
	int		   *acted;
	int			nacted = 0;
	int			i;

	ks_check_loaded();
	if (PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("only_idle and cancel_first must not be NULL")));
	only_idle = PG_GETARG_BOOL(1);
	cancel_first = PG_GETARG_BOOL(2);
	id = ks_session_id_arg(fcinfo, 0, NULL, NULL);
	ks_check_privilege(KS_BLOCKERS_WHAT);
	InitMaterializedSRF(fcinfo, 0);

	/* The waiter's node answers for its own locks. */
	if (ks_id_home(id) != 0)
	{
		KsNodeCall	call;

		ks_forward_rows(fcinfo, 0, id, psprintf(INT64_FORMAT, id),
						ks_node_of_session(fcinfo->flinfo->fn_oid, id),
						"release session", ks_wait_timeout_ms(), &call);
		ks_put_forwarded(rsinfo, &call);
		return (Datum) 0;
	}
	sid = ks_id_local(id);
	if (!ks_registry_lookup(sid, &waiter))
		ks_report_missing(sid);

	ks_read_graph(&graph, &sessions, &nsessions);
	wnode = ks_lock_graph_node(&graph, waiter.pid);
	initStringInfo(&passed);
	heads = ks_heads_of(&graph, waiter.pid, &nheads, &cycle, &in_cycle,
						&passed);
	if (wnode == NULL || wnode->nblocks == 0)
	{
		ereport(NOTICE,
				(errmsg("session " INT64_FORMAT " is not waiting for a lock",
						ks_global_id(sid))));
		return (Datum) 0;
	}
	if (in_cycle)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
				 errmsg("session " INT64_FORMAT " is in a deadlock", ks_global_id(sid)),
				 errdetail("It and %s wait for each other.", passed.data),
				 errhint("The deadlock detector ends one of them after deadlock_timeout; no session was ended.")));
	if (cycle)
		ereport(ERROR,
				(errcode(ERRCODE_T_R_DEADLOCK_DETECTED),
				 errmsg("session " INT64_FORMAT " waits behind a deadlock", ks_global_id(sid)),
				 errdetail("Every chain from it leads into sessions that wait for each other: %s.",
						   passed.data),
				 errhint("The deadlock detector ends one of them after deadlock_timeout; no session was ended.")));

	acted = palloc(sizeof(int) * nheads);
	/* The history rows count who waited from this read. */
	ks_record_use_graph(&graph);
	PG_TRY();
	{
		for (i = 0; i < nheads; i++)
		{
			const KsGraphNode *h = &graph.nodes[heads[i]];
			KsHeadRow	row = {h->sid, h->pid, "none", false, NULL};
			KsSession	key;
			KsSession  *s;

			key.pid = h->pid;
			s = h->sid != 0 ?
				bsearch(&key, sessions, nsessions, sizeof(KsSession),
						ks_session_pid_cmp) : NULL;
			if (h->pid == 0)
				row.why_not = "a prepared transaction: commit or roll it back with COMMIT PREPARED or ROLLBACK PREPARED";
			else if (s == NULL)
				row.why_not = ks_not_a_session(h->pid);
			else if (h->pid == MyProcPid)
				row.why_not = "the caller's own session";
			else if (i > 0 && !ks_held_by(waiter.pid, h->pid))
			{
				/* It let go while the heads before it were acted on. */
				row.why_not = "it no longer holds the waiter";
			}
			else
			{
				ks_act_on_head(s, wnode, waiter.pid, only_idle, cancel_first, &row);
				if (row.done)
					acted[nacted++] = h->pid;
			}
			ks_put_row(rsinfo, &row);
		}
	}
	PG_FINALLY();
	{
		ks_record_release_graph();
	}
	PG_END_TRY();

	/*
	 * Back once the waiter is held by none of the heads ended: they are gone
	 * (each wait above saw to it), so their locks are released; whoever holds
	 * the waiter now is shown.
	 */
	if (nacted > 0)
	{
		ks_read_graph(&graph, &sessions, &nsessions);
		resetStringInfo(&passed);
		heads = ks_heads_of(&graph, waiter.pid, &nheads, &cycle, &in_cycle,
							&passed);
		for (i = 0; i < nheads; i++)
		{
			const KsGraphNode *h = &graph.nodes[heads[i]];
			KsHeadRow	row = {h->sid, h->pid, "none", false,
			"the waiter waits for it now"};
			int			j;

			for (j = 0; j < nacted; j++)
			{
				if (acted[j] == h->pid)
					row.why_not = "it still holds the waiter";
			}
			ks_put_row(rsinfo, &row);
		}
	}
	return (Datum) 0;
}
