/*-------------------------------------------------------------------------
 *
 * vsession.c
 *		v$session: the sessions as Oracle's V$SESSION shows them, with who
 *		blocks whom in session IDs.
 *
 * A DBA decides what to kill from the lock graph: which session waits for
 * which, and which one heads the chain.  PostgreSQL answers that one
 * session at a time, in PIDs (pg_blocking_pids()).  Here the whole graph
 * is read once, with every lock partition held, as pg_locks reads the lock
 * table, so that the rows agree with each other: an edge runs from a
 * waiting process to each process that blocks it, by pg_blocking_pids()'s
 * rule -- it holds a lock that conflicts with the one requested, or it
 * waits ahead in the same lock's queue for a conflicting mode.  A parallel
 * worker stands for its leader, as there.
 *
 * Then each session gets its blockers as session IDs and the head of its
 * chain (FINAL_BLOCKING_SESSION): the first session, breadth first from
 * it, that blocks without being blocked.  If every path loops back, the
 * sessions are in a deadlock the deadlock detector has not broken yet
 * (deadlock_timeout), and the head is NULL, with status DEADLOCK.
 *
 * Blocks that are not lock waits (serializable snapshots, predicate locks)
 * are not in the graph, as they are not in pg_locks' waits.  What a caller
 * may see of a session follows pg_stat_activity, as the process list does;
 * the blockers, as in pg_locks, everyone may see.
 *
 * gv$session adds every node of the cluster, each answering for its own
 * sessions and its own lock graph (locks are not shared between nodes).
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  vsession.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_authid.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "kill_session.h"
#include "registry.h"

PG_FUNCTION_INFO_V1(kill_session_vsession);
PG_FUNCTION_INFO_V1(kill_session_cluster_vsession);

#define KS_VSESSION_COLS	20

/* One edge of the lock graph: waiter waits for blocker. */
typedef struct KsBlock
{
	int			waiter;			/* PID of a waiting process's group leader */
	int			blocker;		/* of a blocking one's; 0 for a prepared
								 * transaction */
	bool		holds;			/* it holds a conflicting lock, rather than
								 * waits ahead in the queue */
	int64		blocker_id;		/* its session ID, 0 if it is no session */
} KsBlock;

/* What a process waits for, as its PGPROC said in the same read. */
typedef struct KsWait
{
	int			pid;
	uint32		wait_event_info;
} KsWait;

/* The lock graph, as read at one moment. */
typedef struct KsLockGraph
{
	KsBlock    *blocks;			/* sorted by waiter, then as listed */
	int			nblocks;
	int		   *waiting;		/* PIDs (group leaders) waiting for a lock,
								 * sorted */
	int			nwaiting;
	KsWait	   *waits;			/* what every process waits for, by PID */
	int			nwaits;
} KsLockGraph;

static int
ks_int_cmp(const void *a, const void *b)
{
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	return (x > y) - (x < y);
}

/*
 * Blocks of one waiter: those that hold a conflicting lock first, then
 * those queued ahead; sessions before other processes, by session ID.
 */
static int
ks_block_cmp(const void *a, const void *b)
{
	const KsBlock *x = a;
	const KsBlock *y = b;

	if (x->waiter != y->waiter)
		return (x->waiter > y->waiter) - (x->waiter < y->waiter);
	if (x->holds != y->holds)
		return x->holds ? -1 : 1;
	if ((x->blocker_id == 0) != (y->blocker_id == 0))
		return x->blocker_id == 0 ? 1 : -1;
	if (x->blocker_id != y->blocker_id)
		return (x->blocker_id > y->blocker_id) - (x->blocker_id < y->blocker_id);
	return (x->blocker > y->blocker) - (x->blocker < y->blocker);
}

static void
ks_add_block(KsLockGraph *graph, int *size, int waiter, int blocker,
			 bool holds)
{
	if (graph->nblocks == *size)
	{
		*size *= 2;
		graph->blocks = repalloc(graph->blocks, sizeof(KsBlock) * *size);
	}
	graph->blocks[graph->nblocks].waiter = waiter;
	graph->blocks[graph->nblocks].blocker = blocker;
	graph->blocks[graph->nblocks].holds = holds;
	graph->blocks[graph->nblocks].blocker_id = 0;
	graph->nblocks++;
}

/* The group leader of a process: itself unless it is a parallel worker. */
static PGPROC *
ks_leader(PGPROC *proc)
{
	return proc->lockGroupLeader != NULL ? proc->lockGroupLeader : proc;
}

/* Whether holder waits ahead of proc in lock's queue. */
static bool
ks_queued_ahead(LOCK *lock, PGPROC *holder, PGPROC *proc)
{
	PGPROC	   *q;

	for (q = ks_first_waiter(lock); q != NULL && q != proc;
		 q = ks_next_waiter(lock, q))
	{
		if (q == holder)
			return true;
	}
	return false;
}

/*
 * Read the lock graph: every lock partition held at once, in order, as
 * GetLockStatusData() holds them, so that no lock is granted or released
 * while it is read.  Fast-path locks need no reading: they are weak
 * relation locks, which conflict only with strong ones, and a strong
 * request moves every conflicting fast-path lock into the main table
 * before it waits.
 */
static void
ks_read_lock_graph(KsLockGraph *graph)
{
	int			size = 64;
	int			wsize = 64;
	uint32		p;
	int			i;

	graph->blocks = palloc(sizeof(KsBlock) * size);
	graph->nblocks = 0;
	graph->waiting = palloc(sizeof(int) * wsize);
	graph->nwaiting = 0;
	graph->waits = palloc(sizeof(KsWait) * ProcGlobal->allProcCount);
	graph->nwaits = 0;

	for (i = 0; i < NUM_LOCK_PARTITIONS; i++)
		LWLockAcquire(LockHashPartitionLockByIndex(i), LW_SHARED);

	for (p = 0; p < ProcGlobal->allProcCount; p++)
	{
		PGPROC	   *proc = &ProcGlobal->allProcs[p];
		LOCK	   *lock = proc->waitLock;
		PGPROC	   *leader;
		PROCLOCK   *proclock;
		LOCKMASK	conflicts;

		if (proc->pid == 0)
			continue;
		graph->waits[graph->nwaits].pid = proc->pid;
		graph->waits[graph->nwaits].wait_event_info =
			*(volatile uint32 *) &proc->wait_event_info;
		graph->nwaits++;
		if (lock == NULL)
			continue;
		leader = ks_leader(proc);
		if (graph->nwaiting == wsize)
		{
			wsize *= 2;
			graph->waiting = repalloc(graph->waiting, sizeof(int) * wsize);
		}
		graph->waiting[graph->nwaiting++] = leader->pid;

		conflicts = GetLocksMethodTable(lock)->conflictTab[proc->waitLockMode];
		for (proclock = ks_first_proclock(lock); proclock != NULL;
			 proclock = ks_next_proclock(lock, proclock))
		{
			PGPROC	   *holder = proclock->tag.myProc;

			/* Neither a process nor its lock group blocks itself. */
			if (holder == proc || proclock->groupLeader == leader)
				continue;
			if (conflicts & proclock->holdMask)
				ks_add_block(graph, &size, leader->pid,
							 proclock->groupLeader->pid, true);
			else if (holder->waitLock == lock &&
					 (conflicts & LOCKBIT_ON(holder->waitLockMode)) &&
					 ks_queued_ahead(lock, holder, proc))
				ks_add_block(graph, &size, leader->pid,
							 proclock->groupLeader->pid, false);
		}
	}

	for (i = NUM_LOCK_PARTITIONS; --i >= 0;)
		LWLockRelease(LockHashPartitionLockByIndex(i));

	qsort(graph->waiting, graph->nwaiting, sizeof(int), ks_int_cmp);
	qsort(graph->waits, graph->nwaits, sizeof(KsWait), ks_int_cmp);
}

/* The session ID of the process pid, 0 if it is no client session. */
static int64
ks_pid_session(const KsSession *sessions, int nsessions, int pid)
{
	KsSession	key;
	KsSession  *found;

	if (pid == 0)
		return 0;
	key.pid = pid;
	found = bsearch(&key, sessions, nsessions, sizeof(KsSession),
					ks_session_pid_cmp);
	return found != NULL ? ks_global_id(found->sid) : 0;
}

/*
 * The blocks of waiter pid, sorted and without duplicates (the workers of
 * one parallel query can wait for the same process); *n is set.
 */
static KsBlock *
ks_blocks_of(const KsLockGraph *graph, int pid, int *n)
{
	int			lo = 0;
	int			hi = graph->nblocks;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (graph->blocks[mid].waiter < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (hi = lo; hi < graph->nblocks && graph->blocks[hi].waiter == pid; hi++)
		;
	*n = hi - lo;
	return &graph->blocks[lo];
}

static bool
ks_is_waiting(const KsLockGraph *graph, int pid)
{
	return bsearch(&pid, graph->waiting, graph->nwaiting, sizeof(int),
				   ks_int_cmp) != NULL;
}

/*
 * Sort the graph's blocks, each with its blocker's session ID, and drop
 * duplicates.
 */
static void
ks_sort_blocks(KsLockGraph *graph, const KsSession *sessions, int nsessions)
{
	int			i;
	int			n = 0;

	for (i = 0; i < graph->nblocks; i++)
		graph->blocks[i].blocker_id = ks_pid_session(sessions, nsessions,
													 graph->blocks[i].blocker);
	qsort(graph->blocks, graph->nblocks, sizeof(KsBlock), ks_block_cmp);
	for (i = 0; i < graph->nblocks; i++)
	{
		int			j;
		bool		seen = false;

		/* the same block, or a weaker one by the same blocker, listed */
		for (j = n - 1; j >= 0 && !seen &&
			 graph->blocks[j].waiter == graph->blocks[i].waiter; j--)
			seen = graph->blocks[j].blocker == graph->blocks[i].blocker;
		if (!seen)
			graph->blocks[n++] = graph->blocks[i];
	}
	graph->nblocks = n;
}

/*
 * The head of pid's chain: breadth first along the blocks, the first
 * session that blocks and is not blocked.  Its session ID and status
 * VALID; or 0 and DEADLOCK if every path loops back (a deadlock not broken
 * yet); or 0 and UNKNOWN if the only heads are no sessions (a prepared
 * transaction, a background process).
 */
static int64
ks_final_blocker(const KsLockGraph *graph, int pid, const char **status)
{
	int		   *queue = palloc(sizeof(int) * (graph->nblocks + 1));
	int			head = 0;
	int			tail = 0;
	bool		other_head = false;
	int			n;
	int			i;
	KsBlock    *blocks;

	queue[tail++] = pid;
	while (head < tail)
	{
		int			p = queue[head++];

		blocks = ks_blocks_of(graph, p, &n);
		if (n == 0)
		{
			/* a head: not blocked */
			int64		id = 0;

			for (i = 0; i < graph->nblocks && id == 0; i++)
				if (graph->blocks[i].blocker == p)
					id = graph->blocks[i].blocker_id;
			if (id != 0)
			{
				pfree(queue);
				*status = "VALID";
				return id;
			}
			other_head = true;
			continue;
		}
		for (i = 0; i < n; i++)
		{
			int			j;
			bool		seen = false;

			for (j = 0; j < tail && !seen; j++)
				seen = queue[j] == blocks[i].blocker;
			if (!seen)
				queue[tail++] = blocks[i].blocker;
		}
	}
	pfree(queue);
	*status = other_head ? "UNKNOWN" : "DEADLOCK";
	return 0;
}

/* "address:port" or "localhost", as the registry keeps it, split. */
static void
ks_split_host(const char *host, Datum *machine, bool *machine_null,
			  Datum *port, bool *port_null)
{
	const char *colon = strrchr(host, ':');

	if (host[0] == '\0')
	{
		*machine_null = true;
		*port_null = true;
		return;
	}
	if (colon == NULL)
	{
		*machine = CStringGetTextDatum(host);
		*port_null = true;
		return;
	}
	*machine = PointerGetDatum(cstring_to_text_with_len(host, colon - host));
	*port = Int32GetDatum(atoi(colon + 1));
}

static Datum
ks_timestamp_or_null(TimestampTz ts, bool *isnull)
{
	if (ts == 0)
	{
		*isnull = true;
		return (Datum) 0;
	}
	return TimestampTzGetDatum(ts);
}

/* Put one session's row, after this node's number if with_node. */
static void
ks_put_vsession_row(ReturnSetInfo *rsinfo, bool with_node,
					const KsLockGraph *graph, const KsSession *session,
					const KsActivity *be, bool read_all_stats, TimestampTz now)
{
	Datum		all_values[KS_VSESSION_COLS + 1] = {0};
	bool		all_nulls[KS_VSESSION_COLS + 1] = {0};
	Datum	   *values = with_node ? &all_values[1] : all_values;
	bool	   *nulls = with_node ? &all_nulls[1] : all_nulls;
	BackendState state = be ? be->state : STATE_UNDEFINED;
	Oid			role = be ? be->userid :
		get_role_oid(NameStr(session->user_name), true);
	bool		visible = read_all_stats ||
		(OidIsValid(role) && has_privs_of_role(GetUserId(), role));
	bool		active = state == STATE_RUNNING || state == STATE_FASTPATH;
	KsBlock    *blocks;
	int			nblocks;
	const char *user;
	Datum	   *ids;
	int			nids = 0;
	int			i;

	values[0] = Int64GetDatum(ks_global_id(session->sid));	/* sid */
	values[1] = Int32GetDatum(session->pid);	/* serial# */
	user = be != NULL ? GetUserNameFromId(role, true) :
		NameStr(session->user_name);
	if (user != NULL)
		values[2] = CStringGetTextDatum(user);	/* username */
	else
		nulls[2] = true;
	if (visible && state != STATE_DISABLED)
	{
		KsWait	   *wait;
		uint32		wait_event_info;
		const char *event;

		/* status */
		values[3] = CStringGetTextDatum(session->killed ? "KILLED" :
										active ? "ACTIVE" : "INACTIVE");
		ks_split_host(session->host, &values[4], &nulls[4],
					  &values[5], &nulls[5]);	/* machine, port */
		if (active && be->query_id != 0)
			values[7] = Int64GetDatum(be->query_id);	/* sql_id */
		else
			nulls[7] = true;
		if (active)				/* sql_exec_start */
			values[8] = ks_timestamp_or_null(be->stmt_start,
											 &nulls[8]);
		else
			nulls[8] = true;
		if (!active && be != NULL && be->query_id != 0)
			values[9] = Int64GetDatum(be->query_id);	/* prev_sql_id */
		else
			nulls[9] = true;
		values[10] = ks_timestamp_or_null(be ? be->proc_start :
										  session->connect_time, &nulls[10]);	/* logon_time */
		if (be != NULL && be->state_start != 0)
		{
			long		secs;
			int			usecs;

			TimestampDifference(be->state_start, now, &secs, &usecs);
			values[11] = Int32GetDatum((int32) Min(secs, PG_INT32_MAX));	/* last_call_et */
		}
		else
			nulls[11] = true;

		/* event, wait_class, state: what the process waits for now */
		wait = bsearch(&session->pid, graph->waits, graph->nwaits,
					   sizeof(KsWait), ks_int_cmp);
		wait_event_info = wait != NULL ? wait->wait_event_info : 0;
		event = wait_event_info != 0 ? pgstat_get_wait_event(wait_event_info) : NULL;
		if (event != NULL)
		{
			values[17] = CStringGetTextDatum(event);
			values[18] = CStringGetTextDatum(pgstat_get_wait_event_type(wait_event_info));
			values[19] = CStringGetTextDatum("WAITING");
		}
		else
		{
			nulls[17] = true;
			nulls[18] = true;
			values[19] = CStringGetTextDatum("WAITED UNKNOWN TIME");
		}
	}
	else
	{
		nulls[3] = nulls[4] = nulls[5] = true;
		for (i = 7; i <= 11; i++)
			nulls[i] = true;
		nulls[17] = nulls[18] = nulls[19] = true;
	}
	/* program: application_name, which pg_stat_activity shows to all */
	if (be != NULL && be->appname[0] != '\0')
		values[6] = CStringGetTextDatum(be->appname);
	else
		nulls[6] = true;

	/* the blockers, and the head of the chain */
	blocks = ks_blocks_of(graph, session->pid, &nblocks);
	ids = palloc(sizeof(Datum) * Max(nblocks, 1));
	for (i = 0; i < nblocks; i++)
		if (blocks[i].blocker_id != 0)
			ids[nids++] = Int64GetDatum(blocks[i].blocker_id);
	if (!ks_is_waiting(graph, session->pid))
	{
		values[12] = CStringGetTextDatum("NOT IN WAIT");
		values[15] = CStringGetTextDatum("NOT IN WAIT");
		nulls[13] = nulls[14] = nulls[16] = true;
	}
	else
	{
		const char *final_status;
		int64		final_id;

		values[12] = CStringGetTextDatum(nids > 0 ? "VALID" :
										 nblocks > 0 ? "UNKNOWN" : "NO HOLDER");
		if (nids > 0)
			values[13] = ids[0];	/* blocking_session */
		else
			nulls[13] = true;
		values[14] = PointerGetDatum(construct_array(ids, nids, INT8OID, 8,
													 FLOAT8PASSBYVAL,
													 TYPALIGN_DOUBLE));
		if (nblocks > 0)
		{
			final_id = ks_final_blocker(graph, session->pid, &final_status);
			values[15] = CStringGetTextDatum(final_status);
			if (final_id != 0)
				values[16] = Int64GetDatum(final_id);
			else
				nulls[16] = true;
		}
		else
		{
			values[15] = CStringGetTextDatum("NO HOLDER");
			nulls[16] = true;
		}
	}

	if (with_node)
		all_values[0] = Int32GetDatum(ks_node_id());	/* inst_id */
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, all_values,
						 all_nulls);
}

/*
 * Put a row for each session of this server, with this node's number first
 * if with_node.
 */
static void
ks_list_vsession(ReturnSetInfo *rsinfo, bool with_node)
{
	bool		read_all_stats;
	TimestampTz now = GetCurrentTimestamp();
	KsSession  *sessions;
	int			nsessions;
	KsLockGraph graph;
	int			i;

	read_all_stats = has_privs_of_role(GetUserId(), ROLE_PG_READ_ALL_STATS);
	sessions = ks_registry_snapshot(&nsessions, true);
	ks_read_lock_graph(&graph);
	ks_sort_blocks(&graph, sessions, nsessions);
	for (i = 0; i < nsessions; i++)
	{
		KsActivity	activity;

		ks_put_vsession_row(rsinfo, with_node, &graph, &sessions[i],
							ks_read_activity(sessions[i].procno, sessions[i].pid,
											 &activity, NULL) ? &activity : NULL,
							read_all_stats, now);
	}
}

/*
 * kill_session_vsession() returns setof the columns of v$session: this
 * server's client sessions, with the lock graph read once.
 */
Datum
kill_session_vsession(PG_FUNCTION_ARGS)
{
	ks_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	ks_list_vsession((ReturnSetInfo *) fcinfo->resultinfo, false);
	return (Datum) 0;
}

/* The columns of a row that only roles that may see its session see. */
static const int ks_vsession_private[] = {3, 4, 5, 7, 8, 9, 10, 11, 17, 18, 19};

/*
 * Whether a row of node's v$session, its columns as text, may be shown:
 * its SID must carry that node, and so must every session it names as a
 * blocker, so that no node can point a kill at another node's session.  What the caller may not see of another role's session is
 * hidden as v$session hides it here.
 */
static bool
ks_node_vsession_row_ok(int node, const char **row, bool read_all_stats)
{
	static const int ids[] = {0, 13, 16};
	Oid			role;
	int			i;

	for (i = 0; i < lengthof(ids); i++)
	{
		long long	id;
		char	   *end;

		if (row[ids[i]] == NULL)
		{
			if (ids[i] == 0)
				return false;
			continue;
		}
		errno = 0;
		id = strtoll(row[ids[i]], &end, 10);
		if (end == row[ids[i]] || *end != '\0' || errno != 0 ||
			!ks_id_valid(id) || ks_id_node(id) != node)
			return false;
	}
	/* blocking_sessions: "{id,id,...}" */
	if (row[14] != NULL)
	{
		const char *p = row[14];

		if (*p++ != '{')
			return false;
		while (*p != '}')
		{
			long long	id;
			char	   *end;

			errno = 0;
			id = strtoll(p, &end, 10);
			if (end == p || errno != 0 || !ks_id_valid(id) ||
				ks_id_node(id) != node || (*end != ',' && *end != '}'))
				return false;
			p = *end == ',' ? end + 1 : end;
		}
		if (p[1] != '\0')
			return false;
	}
	role = row[2] != NULL ? get_role_oid(row[2], true) : InvalidOid;
	if (!read_all_stats &&
		!(OidIsValid(role) && has_privs_of_role(GetUserId(), role)))
	{
		for (i = 0; i < lengthof(ks_vsession_private); i++)
			row[ks_vsession_private[i]] = NULL;
	}
	return true;
}

/*
 * kill_session_cluster_vsession() returns setof (inst_id, the columns of
 * v$session): this server's sessions and every other node's in
 * kill_session_nodes, each node answering for its own sessions and its own
 * lock graph, as its v$session shows them to the caller's role there.  The
 * nodes are read at once, while this server's rows are taken; a node that
 * cannot be read gives a WARNING, and the list comes without its rows.
 */
Datum
kill_session_cluster_vsession(PG_FUNCTION_ARGS)
{
	ks_check_loaded();
	InitMaterializedSRF(fcinfo, 0);
	ks_cluster_list(fcinfo, "v$session", "*", KS_VSESSION_COLS,
					ks_list_vsession, ks_node_vsession_row_ok);
	return (Datum) 0;
}
