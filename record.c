/*-------------------------------------------------------------------------
 *
 * record.c
 *		Every action on record: the reason a caller gives, the history row
 *		an action writes before it signals and completes with its outcome,
 *		and the views kill_session_history and kill_session_stats.
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
 * This file owns what a row says and who may read it.  It must not be
 * called by the leaves; it stores rows only through history.c.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  record.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "fmgr.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"

#include "history.h"
#include "kill_session.h"
#include "lockgraph.h"

PG_FUNCTION_INFO_V1(kill_session_history);
PG_FUNCTION_INFO_V1(kill_session_cluster_history);
PG_FUNCTION_INFO_V1(kill_session_stats);
PG_FUNCTION_INFO_V1(kill_session_stats_reset);

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
	return text_to_cstring(arg);
}

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
ks_blocking_count(pid_t pid)
{
	KsLockGraph graph;
	KsSession  *sessions;
	int			nsessions;
	int			count = 0;
	int			i;

	if (!ks_any_lock_waiter())
		return 0;
	sessions = ks_registry_snapshot(&nsessions, true);
	ks_lock_graph_read(&graph, sessions, nsessions);
	for (i = 0; i < graph.nblocks; i++)
	{
		if (graph.blocks[i].blocker == pid)
			count++;
	}
	return count;
}

static KsHistActor
ks_actor_kind(const KsKiller *me)
{
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
	char	   *statement = palloc(pgstat_track_activity_query_size);

	me->history_seq = 0;
	if (!ks_history_on())
		return;
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
	row.blocking = ks_blocking_count(target->pid);
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
	if (!ks_history_on())
		return;
	ks_row_start(&row, action, me);
	row.forwarded = true;
	row.victim_id = id;
	row.victim_node = node;
	row.victim_roleid = InvalidOid;
	me->history_seq = ks_history_write(&row);
}

/* Complete the row of me's action with its outcome, and count it. */
void
ks_record_end(const KsKiller *me, KsHistAction action, KsHistOutcome outcome,
			  const char *detail)
{
	ks_history_complete(me->history_seq, action, ks_actor_kind(me), outcome,
						detail);
}

/*
 * Complete the row of me's action with the error that is ending it; called
 * in PG_CATCH(), before the error is thrown on.  signalled: the action had
 * already reached the session, and only its caller's wait ended.
 */
void
ks_record_error(const KsKiller *me, KsHistAction action, bool signalled,
				MemoryContext context)
{
	MemoryContext old = MemoryContextSwitchTo(context);
	ErrorData  *edata = CopyErrorData();
	KsHistOutcome outcome;

	MemoryContextSwitchTo(old);
	if (signalled)
		outcome = KS_O_MARKED;
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

/* pg_stat_activity's name of a backend state. */
static const char *
ks_state_name(int state)
{
	switch ((BackendState) state)
	{
		case STATE_IDLE:
			return "idle";
		case STATE_RUNNING:
			return "active";
		case STATE_IDLEINTRANSACTION:
			return "idle in transaction";
		case STATE_FASTPATH:
			return "fastpath function call";
		case STATE_IDLEINTRANSACTION_ABORTED:
			return "idle in transaction (aborted)";
		case STATE_DISABLED:
			return "disabled";
		default:
			return NULL;
	}
}

#define KS_HISTORY_COLS 31

/* Put one row of kill_session_history; who may see what follows pg_stat_activity. */
static void
ks_put_history_row(ReturnSetInfo *rsinfo, bool with_node, const KsHistRow *row,
				   bool read_all_stats)
{
	Datum		all_values[KS_HISTORY_COLS + 1] = {0};
	bool		all_nulls[KS_HISTORY_COLS + 1] = {0};
	Datum	   *values = with_node ? &all_values[1] : all_values;
	bool	   *nulls = with_node ? &all_nulls[1] : all_nulls;
	const KsKiller *a = &row->actor;
	bool		visible = read_all_stats ||
		(OidIsValid(row->victim_roleid) &&
		 has_privs_of_role(GetUserId(), row->victim_roleid));
	const char *s;
	int			i = 0;

#define KS_TEXT(str) \
	do { const char *t_ = (str); \
		if (t_ == NULL) nulls[i++] = true; \
		else values[i++] = CStringGetTextDatum(t_); } while (0)
#define KS_NONZERO(cond, datum) \
	do { if (cond) values[i++] = (datum); else nulls[i++] = true; } while (0)

	values[i++] = Int64GetDatum((int64) row->seq);	/* seq */
	values[i++] = TimestampTzGetDatum(row->at); /* at */
	KS_TEXT(ks_history_action_name(row->action));	/* action */
	values[i++] = Int64GetDatum(row->victim_id);	/* session_id */
	values[i++] = Int32GetDatum(row->victim_node);	/* node */
	KS_NONZERO(row->victim_pid != 0, Int32GetDatum(row->victim_pid));	/* pid */
	KS_TEXT(row->forwarded ? NULL : NameStr(row->victim_role)); /* username */
	KS_TEXT(row->forwarded ? NULL : NameStr(row->victim_db));	/* database */
	KS_TEXT(row->forwarded ? NULL : row->victim_app);	/* application_name */
	KS_TEXT(row->forwarded ? NULL :
			!visible ? NULL : row->victim_client);	/* client */
	KS_TEXT(ks_state_name(row->victim_state));	/* state */
	KS_NONZERO(row->victim_xact_start != 0,
			   TimestampTzGetDatum(row->victim_xact_start));	/* xact_start */
	KS_NONZERO(row->victim_running && row->victim_sql_id != 0,
			   Int64GetDatum(row->victim_sql_id));	/* sql_id */
	KS_NONZERO(!row->victim_running && row->victim_sql_id != 0,
			   Int64GetDatum(row->victim_sql_id));	/* prev_sql_id */
	if (row->forwarded || row->victim_state < 0)
		nulls[i++] = true;		/* statement */
	else
		KS_TEXT(visible ? row->victim_statement : "<insufficient privilege>");
	KS_NONZERO(row->blocking >= 0, Int32GetDatum(row->blocking));	/* blocking */
	KS_NONZERO(a->sid != 0, Int64GetDatum(ks_global_id(a->sid)));	/* actor_session_id */
	values[i++] = Int32GetDatum(a->pid);	/* actor_pid */
	KS_TEXT(NameStr(a->role));	/* actor_username */
	values[i++] = Int32GetDatum(row->actor_node);	/* actor_node */
	KS_NONZERO(a->origin_pid != 0, Int32GetDatum(a->origin_node));	/* origin_node */
	KS_NONZERO(a->origin_pid != 0, Int64GetDatum(a->origin_sid));	/* origin_session_id */
	KS_NONZERO(a->origin_pid != 0, Int32GetDatum(a->origin_pid));	/* origin_pid */
	KS_TEXT(a->origin_pid != 0 ? NameStr(a->origin_role) : NULL);	/* origin_username */
	KS_NONZERO(a->origin_pid != 0, BoolGetDatum(a->origin_vouched));	/* origin_vouched */
	KS_TEXT(a->reason[0] != '\0' ? a->reason : NULL);	/* reason */
	KS_TEXT(ks_history_outcome_name(row->outcome)); /* outcome */
	s = row->detail[0] != '\0' ? row->detail : NULL;
	KS_TEXT(s);					/* outcome_detail */
	KS_NONZERO(row->done_at != 0, TimestampTzGetDatum(row->done_at));	/* done_at */
	KS_NONZERO(row->ended_at != 0, TimestampTzGetDatum(row->ended_at)); /* ended_at */
	KS_NONZERO(row->ended_at != 0,
			   Float8GetDatum((double) (row->ended_at - row->at) / 1000.0));	/* exit_ms */
	Assert(i == KS_HISTORY_COLS);
#undef KS_TEXT
#undef KS_NONZERO

	if (with_node)
		all_values[0] = Int32GetDatum(ks_node_id());	/* inst_id */
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, all_values,
						 all_nulls);
}

/* This server's history, oldest first, after its node's number if with_node. */
static void
ks_list_history(ReturnSetInfo *rsinfo, bool with_node)
{
	bool		read_all_stats = has_privs_of_role(GetUserId(),
												   ROLE_PG_READ_ALL_STATS);
	int			n;
	KsHistRow  *rows = ks_history_rows(&n);
	int			i;

	for (i = 0; i < n; i++)
		ks_put_history_row(rsinfo, with_node, &rows[i], read_all_stats);
}

/*
 * kill_session_history() returns setof record: the rows of the history,
 * oldest first.
 */
Datum
kill_session_history(PG_FUNCTION_ARGS)
{
	ks_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	ks_list_history((ReturnSetInfo *) fcinfo->resultinfo, false);
	return (Datum) 0;
}

/* An ID column of a node's row: valid, and of node; NULL if allowed. */
static bool
ks_id_of_node(const char *value, int node, bool null_ok)
{
	long long	id;
	char	   *end;

	if (value == NULL)
		return null_ok;
	errno = 0;
	id = strtoll(value, &end, 10);
	return end != value && *end == '\0' && errno == 0 && ks_id_valid(id) &&
		ks_id_node(id) == node;
}

/*
 * Whether a row of node's kill_session_history may be shown: its session
 * ID carries the node it names, which is node itself unless the row is of
 * a call node forwarded (no PID there); its actor is a session of node.
 * What the caller may not see of the session here is hidden, as here.
 */
static bool
ks_node_history_row_ok(int node, const char **row, bool read_all_stats)
{
	int			victim_node;
	Oid			role;

	if (row[4] == NULL)
		return false;
	victim_node = atoi(row[4]);
	if (!ks_id_of_node(row[3], victim_node, false) ||
		(victim_node != node && row[5] != NULL) ||
		!ks_id_of_node(row[16], node, true))
		return false;
	role = row[6] != NULL ? get_role_oid(row[6], true) : InvalidOid;
	if (!read_all_stats &&
		!(OidIsValid(role) && has_privs_of_role(GetUserId(), role)))
	{
		row[9] = NULL;			/* client */
		if (row[14] != NULL)
			row[14] = "<insufficient privilege>";	/* statement */
	}
	return true;
}

/*
 * kill_session_cluster_history() returns setof (inst_id, the columns of
 * kill_session_history): this server's history and every other node's in
 * kill_session_nodes, as each node's view shows it to the caller's role
 * there; a node that cannot be read gives a WARNING.
 */
Datum
kill_session_cluster_history(PG_FUNCTION_ARGS)
{
	ks_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	ks_cluster_list(fcinfo, "kill_session_history", "*", KS_HISTORY_COLS,
					ks_list_history, ks_node_history_row_ok,
					ks_wait_timeout_ms());
	return (Datum) 0;
}

/*
 * kill_session_stats() returns setof record: how many actions ended in each
 * outcome, by action and kind of actor, since the counters were reset;
 * only counts above zero.
 */
Datum
kill_session_stats(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	KsHistCounts counts;
	int			a;
	int			o;
	int			k;

	ks_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	ks_history_counts(&counts);
	for (a = 0; a < KS_H_NUM_ACTIONS; a++)
		for (o = 1; o < KS_O_NUM_OUTCOMES; o++)
			for (k = 0; k < KS_A_NUM_ACTORS; k++)
			{
				Datum		values[5];
				bool		nulls[5] = {0};

				if (counts.n[a][o][k] == 0)
					continue;
				values[0] = CStringGetTextDatum(ks_history_action_name(a));
				values[1] = CStringGetTextDatum(ks_history_outcome_name(o));
				values[2] = CStringGetTextDatum(ks_history_actor_name(k));
				values[3] = Int64GetDatum((int64) counts.n[a][o][k]);
				values[4] = TimestampTzGetDatum(counts.reset_at);
				tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc,
									 values, nulls);
			}
	return (Datum) 0;
}

/*
 * kill_session_stats_reset(): the counters start again from zero.  Only
 * superusers may run it unless granted: EXECUTE is revoked from PUBLIC.
 */
Datum
kill_session_stats_reset(PG_FUNCTION_ARGS)
{
	ks_check_loaded();
	ks_history_reset_counts();
	PG_RETURN_VOID();
}
