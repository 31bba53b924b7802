/*-------------------------------------------------------------------------
 *
 * record.c
 *		Every action on record: the reason a caller gives, and the history
 *		row an action writes before it signals and completes with its
 *		outcome.
 *
 * An action calls ks_record_begin() once it has found its session and
 * before it signals it: the row names the session as it was then (its
 * role, client, state, transaction start, statement and SQL_ID, and how
 * many sessions waited for it in the lock graph), the actor and its
 * origin, and the reason.  The action then completes it with
 * ks_record_end(), or with ks_record_error() when it fails on the way; an
 * actor that dies first leaves the row without an outcome.  The session
 * itself writes when it ended (registry.c, on its way out).
 *
 * This file owns what a row says.  It must not be called by the leaves,
 * and must not call action.c, which calls it; it stores rows only through
 * history.c.  record_view.c shows them.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  record.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "history.h"
#include "kill_session.h"
#include "lockgraph.h"

/*
 * The reason argument at argno, checked: NULL if not given.  It is told to
 * the session and written in LOG lines, so it must be text a line can
 * hold: not empty, at most KS_REASON_LEN - 1 bytes, valid in the
 * database's encoding, and without control characters.
 */
const char *
ks_reason_arg(FunctionCallInfo fcinfo, int argno)
{
	text	   *arg;
	const char *p;
	int			len;
	int			i;

	if (argno >= PG_NARGS() || PG_ARGISNULL(argno))
		return NULL;
	arg = PG_GETARG_TEXT_PP(argno);
	p = VARDATA_ANY(arg);
	len = VARSIZE_ANY_EXHDR(arg);
	if (len == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reason must not be empty"),
				 errhint("Give a reason, or none (NULL).")));
	if (len >= KS_REASON_LEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reason is too long"),
				 errdetail("It has %d bytes; at most %d are kept.",
						   len, KS_REASON_LEN - 1)));
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) p[i];

		if (c < 0x20 || c == 0x7f)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("reason must not contain control characters"),
					 errdetail("Character 0x%02x at byte %d.", c, i + 1)));
	}
	if (!pg_verifymbstr(p, len, true))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("reason is not valid text in this database's encoding")));
	if (GetDatabaseEncoding() == PG_UTF8)
	{
		/* Unicode's other line breaks and controls: C1, and U+2028, U+2029. */
		for (i = 0; i < len; i += pg_utf_mblen((const unsigned char *) p + i))
		{
			pg_wchar	c = utf8_to_unicode((const unsigned char *) p + i);

			if ((c >= 0x80 && c <= 0x9f) || c == 0x2028 || c == 0x2029)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("reason must not contain control characters"),
						 errdetail("Character U+%04X at byte %d.", c, i + 1)));
		}
	}
	return text_to_cstring(arg);
}

/* The lock graph held for an action on many sessions, and whether read. */
static bool ks_graph_held = false;
static bool ks_graph_read = false;
static KsLockGraph ks_graph;

/* Whether any process waits for a heavyweight lock, as PGPROCs say now. */
static bool
ks_any_lock_waiter(void)
{
	int			i;

	for (i = 0; i < ProcGlobal->allProcCount; i++)
	{
		uint32		info = *(volatile uint32 *) &ProcGlobal->allProcs[i].wait_event_info;

		if ((info & 0xFF000000) == PG_WAIT_LOCK)
			return true;
	}
	return false;
}

/*
 * How many processes wait for pid in the lock graph: hold a lock it wants,
 * or wait ahead of it, as pg_blocking_pids() says.  0 without reading the
 * lock table when no process waits for a lock at all.
 */
static int
ks_blocking_count(pid_t pid, int procno)
{
	KsLockGraph local;
	KsLockGraph *graph = &local;
	int			count = 0;
	int			i;

	if (ks_graph_held && ks_graph_read)
		graph = &ks_graph;
	else
	{
		KsSession  *sessions;
		int			nsessions;

		PGPROC	   *proc = GetPGProcByNumber(procno);

		/*
		 * Nobody waits for a session that holds no lock of the main table
		 * (and leads no group whose members might); else nobody waits if no
		 * process waits for a lock at all.
		 */
		if ((proc->lockGroupLeader == NULL && ks_proc_holds_no_lock(proc)) ||
			!ks_any_lock_waiter())
			return 0;
		if (ks_graph_held)
			graph = &ks_graph;
		sessions = ks_registry_snapshot(&nsessions, true);
		ks_lock_graph_read(graph, sessions, nsessions);
		ks_graph_read = ks_graph_held;
	}
	for (i = 0; i < graph->nblocks; i++)
	{
		if (graph->blocks[i].blocker == pid)
			count++;
	}
	return count;
}

/*
 * For an action on many sessions at once (kill_sessions()): the lock graph
 * is read once, at the first row that needs it, and every row until
 * ks_record_release_graph() counts from that read, instead of taking the
 * lock table's partition locks again for each session.
 */
void
ks_record_hold_graph(void)
{
	ks_graph_held = true;
	ks_graph_read = false;
}

/*
 * The same with a read the caller already made (the checker's pass,
 * kill_blockers()), which must outlive the rows written until
 * ks_record_release_graph().
 */
void
ks_record_use_graph(const KsLockGraph *graph)
{
	ks_graph = *graph;
	ks_graph_held = true;
	ks_graph_read = true;
}

void
ks_record_release_graph(void)
{
	ks_graph_held = false;
	ks_graph_read = false;
}

static KsHistActor
ks_actor_kind(const KsKiller *me)
{
	if (me->drain || me->policy)
		return KS_A_AUTOMATIC;
	return me->origin_pid != 0 ? KS_A_FORWARDED : KS_A_SESSION;
}

/* Start a row with the actor and the reason. */
static void
ks_row_start(KsHistRow *row, KsHistAction action, const KsKiller *me)
{
	memset(row, 0, sizeof(KsHistRow));
	row->at = GetCurrentTimestamp();
	row->action = (uint8) action;
	row->outcome = KS_O_PENDING;
	row->actor = *me;
	row->actor_node = ks_node_id();
	row->victim_state = -1;
	row->blocking = -1;
}

/*
 * Write the row of an action on session sid of this server, target as it
 * was found, before the action signals it: me->history_seq is its number
 * (0 when the history is off), which the mark carries to the session.
 */
void
ks_record_begin(KsHistAction action, uint32 sid, const KsSession *target,
				KsKiller *me)
{
	KsHistRow	row;
	KsActivity	activity;
	char	   *statement;

	me->history_seq = 0;
	me->recorded = false;
	if (!ks_history_on())
		return;
	statement = palloc(pgstat_track_activity_query_size);
	ks_row_start(&row, action, me);
	row.victim_id = ks_global_id(sid);
	row.victim_node = ks_node_id();
	row.victim_pid = target->pid;
	row.victim_roleid = target->roleid;
	row.victim_role = target->user_name;
	row.victim_db = target->db_name;
	memcpy(row.victim_client, target->host, KS_HOST_LEN);
	if (ks_read_activity(target->procno, target->pid, &activity, statement, true))
	{
		row.victim_state = (int) activity.state;
		row.victim_xact_start = activity.xact_start;
		row.victim_sql_id = activity.query_id;
		row.victim_running = activity.state == STATE_RUNNING ||
			activity.state == STATE_FASTPATH;
		strlcpy(row.victim_app, activity.appname, NAMEDATALEN);
		if (activity.statement != NULL)
		{
			int			len = pg_mbcliplen(activity.statement,
										   strlen(activity.statement),
										   KS_HISTORY_TEXT_LEN - 1);

			memcpy(row.victim_statement, activity.statement, len);
			row.victim_statement[len] = '\0';
		}
	}
	pfree(statement);
	row.blocking = ks_blocking_count(target->pid, target->procno);
	me->history_seq = ks_history_write(&row);
}

/*
 * Write the row of an action forwarded to node, on session id there: the
 * node writes its own, with the session as it found it.
 */
void
ks_record_begin_forwarded(KsHistAction action, int64 id, int node,
						  KsKiller *me)
{
	KsHistRow	row;

	me->history_seq = 0;
	me->recorded = false;
	if (!ks_history_on())
		return;
	ks_row_start(&row, action, me);
	row.forwarded = true;
	row.victim_id = id;
	row.victim_node = node;
	row.victim_roleid = InvalidOid;
	me->history_seq = ks_history_write(&row);
}

/* Complete the row of me's action with its outcome, and count it, once. */
void
ks_record_end(KsKiller *me, KsHistAction action, KsHistOutcome outcome,
			  const char *detail)
{
	if (me->recorded)
		return;
	me->recorded = true;
	ks_history_complete(me->history_seq, action, ks_actor_kind(me), outcome,
						detail);
}

/*
 * Complete the row of me's action with the error that is ending it; called
 * in PG_CATCH(), before the error is thrown on, unless it is complete.
 * signalled: the action had already reached the session, and only its
 * caller's wait ended; forwarded: it went to another node, which may have
 * acted before the caller was cancelled.
 */
void
ks_record_error(KsKiller *me, KsHistAction action, bool signalled,
				bool forwarded, MemoryContext context)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	ErrorData  *edata = CopyErrorData();
	KsHistOutcome outcome;

	MemoryContextSwitchTo(old);
	if (me->recorded)
		return;
	if (signalled)
		outcome = KS_O_MARKED;
	else if (forwarded && edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
		outcome = KS_O_UNKNOWN; /* the caller stopped waiting: the node may
								 * have acted */
	else if (edata->sqlerrcode == ERRCODE_UNDEFINED_OBJECT)
		outcome = KS_O_NOT_RUNNING;
	else if (edata->sqlerrcode == ERRCODE_TRANSACTION_RESOLUTION_UNKNOWN)
		outcome = KS_O_UNKNOWN;
	else
		outcome = KS_O_REFUSED;
	ks_record_end(me, action, outcome,
				  psprintf("%s: %s", unpack_sql_state(edata->sqlerrcode),
						   edata->message ? edata->message : ""));
}
