/*-------------------------------------------------------------------------
 *
 * registry.c
 *		Client session IDs: a shared-memory map of ID <-> backend.
 *
 * Every client backend gets an ID when it has authenticated: a positive
 * 32-bit number, handed out in sequence from a random starting point chosen
 * when shared memory is created (at server start and again after crash
 * recovery), so that an ID copied before a restart does not name a session
 * of the new server life.  IDs are not reused while the server runs; only
 * after the counter wraps past 4294967295 are IDs handed out again, and then
 * the ones still in use are skipped.
 *
 * A node of a cluster (kill_session.node_id N >= 1) shows its IDs as
 * N * 10^10 + local, so that an ID names its node by itself; the registry
 * keeps the local part.
 *
 * The shared state and its lock are private to the registry, this file and
 * registry_cancel.c (the cancel by SQL_ID's ask and answer), which share
 * registry_slot.h; other files get copies of entries and the operations
 * that write another backend's entry: the kill's mark-and-signal, and the
 * cancel by SQL_ID, whose asked backend writes its answer into the asker's
 * entry (registry.h).
 *
 * The map is exact under concurrency: a backend clears its slot in its own
 * on_shmem_exit callback under the registry lock.  Whoever holds the lock
 * and sees a slot in use therefore knows that the process has not finished
 * exiting, so its PID cannot have been reused.
 *
 * A leaf: it calls no other file of the project; the others ask it through
 * registry.h.  The slots are described in registry_slot.h.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  registry.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <netdb.h>
#include <unistd.h>

#include "access/twophase.h"
#include "common/ip.h"
#include "libpq/libpq-be.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/autovacuum.h"
#include "postmaster/bgworker_internals.h"
#include "replication/walsender.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procsignal.h"
#include "storage/shmem.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

#include "compat.h"
#include "history.h"
#include "registry.h"
#include "registry_slot.h"
#include "session_id.h"

/* This backend's client session ID, 0 when it has none. */
uint32		ks_my_sid = 0;

/* The shared state: registry_slot.h. */
KsShared   *ks_shared = NULL;

/* kill_session.node_id: this server's node in a cluster, 0 for none */
static int	ks_node = 0;

void
ks_define_node_setting(void)
{
	DefineCustomIntVariable("kill_session.node_id",
							"Sets this server's node number in a cluster.",
							"A node N of 1 or more shows its session IDs as N * 10^10 + local ID, "
							"and sessions of other nodes can be reached through kill_session_nodes. "
							"Zero means a single server.",
							&ks_node,
							0,
							0, KS_NODE_MAX,
							PGC_POSTMASTER,
							0,
							NULL, NULL, NULL);
}

int
ks_node_id(void)
{
	return ks_node;
}

int64
ks_global_id(uint32 sid)
{
	return (int64) ks_node * KS_NODE_FACTOR + sid;
}

/* One slot per PGPROC. */
static int
ks_nslots(void)
{
	return MaxBackends + NUM_AUXILIARY_PROCS + max_prepared_xacts;
}

static Size
ks_shmem_size(void)
{
	return add_size(offsetof(KsShared, slots),
					mul_size(ks_nslots(), sizeof(KsSlot)));
}

void
ks_registry_shmem_request(void)
{
	RequestAddinShmemSpace(ks_shmem_size());
	RequestNamedLWLockTranche("kill_session", 1);
}

/* Create or attach to the registry. */
void
ks_registry_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);

	ks_shared = ShmemInitStruct("kill_session", ks_shmem_size(), &found);
	if (!found)
	{
		uint32		start;

		memset(ks_shared, 0, ks_shmem_size());
		ks_shared->lock = &(GetNamedLWLockTranche("kill_session"))->lock;
		ks_shared->nslots = ks_nslots();

		/* A random start in 1..4294967295 for each server life. */
		if (!pg_strong_random(&start, sizeof(start)))
			ereport(FATAL,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not generate a random starting session ID")));
		ks_shared->next_sid = (start % PG_UINT32_MAX) + 1;
		ks_shared->checker_procno = -1;
		ks_shared->wrapped = false;
		for (int i = 0; i < KS_CHECK_NUM; i++)
			pg_atomic_init_u64(&ks_shared->checker_counts[i], 0);
		pg_atomic_init_u32(&ks_shared->checker_min_limit, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

bool
ks_registry_loaded(void)
{
	return ks_shared != NULL;
}

void
ks_check_loaded(void)
{
	if (ks_shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("kill_session must be loaded via shared_preload_libraries"),
				 errhint("Add kill_session to shared_preload_libraries in postgresql.conf and restart the server.")));
}

/* Slot index holding sid, or -1.  Caller holds the registry lock. */
int
ks_find_slot_locked(uint32 sid)
{
	int			i;

	for (i = 0; i < ks_shared->nslots; i++)
	{
		if (ks_shared->slots[i].pid != 0 && ks_shared->slots[i].sid == sid)
			return i;
	}
	return -1;
}

/* Hand out the next ID.  Caller holds the registry lock exclusively. */
static uint32
ks_next_sid_locked(void)
{
	for (;;)
	{
		uint32		sid = ks_shared->next_sid;

		if (sid == PG_UINT32_MAX)
		{
			ks_shared->next_sid = 1;
			ks_shared->wrapped = true;
		}
		else
			ks_shared->next_sid = sid + 1;

		/* Before the first wrap every ID is fresh; after it, skip live ones. */
		if (sid != 0 && (!ks_shared->wrapped || ks_find_slot_locked(sid) < 0))
			return sid;
	}
}

uint32
ks_my_session_id(void)
{
	return ks_my_sid;
}

/*
 * Whether this backend is marked for action, and by whom: for the DETAIL
 * of its FATAL or its cancel, and for the end of its transaction.  Reads
 * only its own slot, which the marker filled before signalling; no lock,
 * as it runs while the backend reports an error.
 */
bool
ks_my_mark(KsAction action, uint32 *my_sid, KsKiller *by)
{
	KsSlot	   *slot;

	if (ks_shared == NULL || ks_my_sid == 0 || MyProc == NULL)
		return false;
	slot = &ks_shared->slots[KS_MY_PROCNO];
	/* A mark written before the signal that brought us here is seen. */
	pg_memory_barrier();
	if (!slot->marked[action] || slot->pid != MyProcPid)
		return false;
	if (my_sid != NULL)
		*my_sid = slot->sid;
	if (by != NULL)
		*by = slot->by[action];
	return true;
}

/*
 * What the process of slot idx is doing, from its PGPROC: the slot is the
 * PGPROC's number.  Caller holds the registry lock, so the process cannot
 * finish exiting meanwhile.
 */
static void
ks_proc_state_locked(int idx, KsProcState *state)
{
	PGPROC	   *proc = &ProcGlobal->allProcs[idx];

	state->lxid = KS_PROC_LXID(proc);
	state->in_transaction = state->lxid != InvalidLocalTransactionId;
	state->reading_client = proc->wait_event_info == WAIT_EVENT_CLIENT_READ;
}

/* Forget a mark for action on session sid, still held by pid. */
void
ks_registry_unmark(uint32 sid, pid_t pid, KsAction action)
{
	int			idx;

	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	idx = ks_find_slot_locked(sid);
	if (idx >= 0 && ks_shared->slots[idx].pid == pid)
		ks_shared->slots[idx].marked[action] = false;
	LWLockRelease(ks_shared->lock);
}

static void
ks_copy_session(int idx, KsSession *session)
{
	KsSlot	   *slot = &ks_shared->slots[idx];

	session->pid = slot->pid;
	session->sid = slot->sid;
	session->procno = idx;
	session->roleid = GetPGProcByNumber(idx)->roleId;
	session->killed = slot->marked[KS_KILL];
	session->disconnect_pending = slot->marked[KS_DISCONNECT];
	session->connect_time = slot->connect_time;
	session->user_name = slot->user_name;
	session->db_name = slot->db_name;
	memcpy(session->host, slot->host, KS_HOST_LEN);
	session->idle_limit_ms = (int) pg_atomic_read_u32(&slot->idle_limit_ms);
	session->idle_limit_scope =
		(KsLimitScope) pg_atomic_read_u32(&slot->idle_limit_scope);
	session->handler_ours = slot->handler_ours;
}

bool
ks_registry_lookup(uint32 sid, KsSession *session)
{
	int			idx;

	LWLockAcquire(ks_shared->lock, LW_SHARED);
	idx = ks_find_slot_locked(sid);
	if (idx >= 0)
		ks_copy_session(idx, session);
	LWLockRelease(ks_shared->lock);
	return idx >= 0;
}

static int
ks_pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int) syscall(SYS_pidfd_open, pid, 0);
#else
	return -1;
#endif
}

/*
 * Mark and signal under the lock, after checking that the slot still holds
 * the same session: it cannot finish exiting meanwhile (it clears its slot
 * under this lock), so pid is still that session's.  The pidfd is taken
 * here for the same reason, signal or none; with no pidfd (kernels before
 * 5.3), or pidfd NULL, there is none.  An earlier kill or disconnect mark is kept; a
 * cancel mark is the latest canceller's.
 */
KsMarkResult
ks_registry_mark_and_signal(uint32 sid, pid_t pid, KsAction action,
							const KsKiller *by, int signo, int *pidfd,
							KsProcState *before)
{
	KsMarkResult result = KS_MARK_DONE;
	int			signal_errno = 0;
	bool		newly_marked = false;
	int			idx;

	if (pidfd != NULL)
		*pidfd = -1;
	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	idx = ks_find_slot_locked(sid);
	if (idx < 0 || ks_shared->slots[idx].pid != pid)
	{
		LWLockRelease(ks_shared->lock);
		return KS_MARK_GONE;
	}
	if (!ks_shared->slots[idx].marked[action] || action == KS_CANCEL)
	{
		newly_marked = !ks_shared->slots[idx].marked[action];
		ks_shared->slots[idx].marked[action] = true;
		ks_shared->slots[idx].by[action] = *by;
	}
	else if (action == KS_DISCONNECT && by->deadline != 0 &&
			 (ks_shared->slots[idx].by[action].deadline == 0 ||
			  by->deadline < ks_shared->slots[idx].by[action].deadline))
	{
		/* A drain deadline, or an earlier one, for a session marked before. */
		ks_shared->slots[idx].by[action] = *by;
	}
	if (before != NULL)
		ks_proc_state_locked(idx, before);
	if (pidfd != NULL)
		*pidfd = ks_pidfd_open(pid);
	if (signo != 0)
	{
		if (signo == KS_SIGNAL_WAKE)
		{
			if (SendProcSignal(pid, PROCSIG_CATCHUP_INTERRUPT, KS_ANY_PROCNO) != 0)
			{
				signal_errno = errno;
				result = KS_MARK_SIGNAL_FAILED;
			}
		}
		/* Backends lead their own process group, as pg_signal_backend knows. */
		else if (kill(-pid, signo) != 0 && kill(pid, signo) != 0)
		{
			signal_errno = errno;
			result = (signal_errno == ESRCH) ? KS_MARK_GONE : KS_MARK_SIGNAL_FAILED;
			/* Not signalled: the session must not say it was. */
			if (newly_marked)
				ks_shared->slots[idx].marked[action] = false;
		}
	}
	if (result == KS_MARK_DONE && action != KS_CANCEL && by->history_seq != 0 &&
		ks_shared->slots[idx].n_end_rows < KS_END_ROWS)
	{
		KsSlot	   *slot = &ks_shared->slots[idx];

		slot->end_rows[slot->n_end_rows++] = by->history_seq;
	}
	LWLockRelease(ks_shared->lock);

	if (signal_errno != 0)
	{
		if (pidfd != NULL && *pidfd >= 0)
			close(*pidfd);
		if (pidfd != NULL)
			*pidfd = -1;
		errno = signal_errno;
	}
	return result;
}

bool
ks_registry_proc_state(uint32 sid, pid_t pid, KsProcState *state)
{
	int			idx;

	LWLockAcquire(ks_shared->lock, LW_SHARED);
	idx = ks_find_slot_locked(sid);
	if (idx < 0 || ks_shared->slots[idx].pid != pid)
	{
		LWLockRelease(ks_shared->lock);
		return false;
	}
	ks_proc_state_locked(idx, state);
	LWLockRelease(ks_shared->lock);
	return true;
}

/* The checker's PGPROC, published as it starts and cleared as it ends. */
void
ks_registry_set_checker(bool running)
{
	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	ks_shared->checker_procno = running ? KS_MY_PROCNO : -1;
	ks_shared->checker_pid = running ? MyProcPid : 0;
	LWLockRelease(ks_shared->lock);
}

bool
ks_registry_checker_running(void)
{
	bool		running;

	LWLockAcquire(ks_shared->lock, LW_SHARED);
	running = ks_shared->checker_pid != 0;
	LWLockRelease(ks_shared->lock);
	return running;
}

void
ks_registry_wake_checker(void)
{
	LWLockAcquire(ks_shared->lock, LW_SHARED);
	if (ks_shared->checker_pid != 0)
		SetLatch(&GetPGProcByNumber(ks_shared->checker_procno)->procLatch);
	LWLockRelease(ks_shared->lock);
}

void
ks_registry_publish_limit(int limit_ms, KsLimitScope scope)
{
	KsSlot	   *slot;

	if (ks_shared == NULL || ks_my_sid == 0 || MyProc == NULL)
		return;
	slot = &ks_shared->slots[KS_MY_PROCNO];
	pg_atomic_write_u32(&slot->idle_limit_scope, (uint32) scope);
	pg_atomic_write_u32(&slot->idle_limit_ms, (uint32) Max(limit_ms, 0));

	/*
	 * A limit of its own smaller than any the checker knows (it reads the
	 * server's itself): the checker may be asleep for longer, so wake it.
	 * Without the lock: a stale PGPROC number wakes another process for
	 * nothing, which every latch's user allows for.
	 */
	if (scope != KS_LIMIT_SERVER && limit_ms > 0)
	{
		uint32		known = pg_atomic_read_u32(&ks_shared->checker_min_limit);
		int			procno = ks_shared->checker_procno;

		if ((known == 0 || (uint32) limit_ms < known) &&
			procno >= 0 && procno < ks_shared->nslots)
			SetLatch(&GetPGProcByNumber(procno)->procLatch);
	}
}

int
ks_registry_min_limit(int server_limit_ms)
{
	int			min_limit = 0;
	int			i;

	LWLockAcquire(ks_shared->lock, LW_SHARED);
	for (i = 0; i < ks_shared->nslots; i++)
	{
		KsSlot	   *slot = &ks_shared->slots[i];
		int			limit;

		if (slot->pid == 0 || slot->sid == 0)
			continue;
		limit = pg_atomic_read_u32(&slot->idle_limit_scope) == KS_LIMIT_SERVER ?
			server_limit_ms : (int) pg_atomic_read_u32(&slot->idle_limit_ms);
		if (limit > 0 && (min_limit == 0 || limit < min_limit))
			min_limit = limit;
	}
	LWLockRelease(ks_shared->lock);
	pg_atomic_write_u32(&ks_shared->checker_min_limit, (uint32) min_limit);
	return min_limit;
}

/* The checker alone writes them: no lock. */
void
ks_registry_checker_count(KsCheckerCount what)
{
	pg_atomic_fetch_add_u64(&ks_shared->checker_counts[what], 1);
}

void
ks_registry_checker_counts(uint64 *counts, pid_t *pid)
{
	int			i;

	for (i = 0; i < KS_CHECK_NUM; i++)
		counts[i] = pg_atomic_read_u64(&ks_shared->checker_counts[i]);
	LWLockAcquire(ks_shared->lock, LW_SHARED);
	*pid = ks_shared->checker_pid;
	LWLockRelease(ks_shared->lock);
}

int
ks_registry_drains_due(TimestampTz now, KsDrain *due, int max,
					   TimestampTz *next)
{
	int			n = 0;
	int			i;

	*next = 0;
	LWLockAcquire(ks_shared->lock, LW_SHARED);
	for (i = 0; i < ks_shared->nslots; i++)
	{
		KsSlot	   *slot = &ks_shared->slots[i];
		TimestampTz deadline = slot->by[KS_DISCONNECT].deadline;

		if (slot->pid == 0 || !slot->marked[KS_DISCONNECT] || deadline == 0 ||
			slot->marked[KS_KILL])
			continue;
		if (deadline <= now && n < max)
		{
			ks_copy_session(i, &due[n].session);
			due[n].by = slot->by[KS_DISCONNECT];
			n++;
		}
		else if (*next == 0 || deadline < *next)
			*next = deadline;
	}
	LWLockRelease(ks_shared->lock);
	return n;
}

int
ks_session_pid_cmp(const void *a, const void *b)
{
	pid_t		pa = ((const KsSession *) a)->pid;
	pid_t		pb = ((const KsSession *) b)->pid;

	return (pa > pb) - (pa < pb);
}

KsSession *
ks_registry_snapshot(int *count, bool by_pid)
{
	KsSession  *sessions = palloc(sizeof(KsSession) * ks_shared->nslots);
	int			n = 0;
	int			i;

	LWLockAcquire(ks_shared->lock, LW_SHARED);
	for (i = 0; i < ks_shared->nslots; i++)
	{
		if (ks_shared->slots[i].pid != 0)
			ks_copy_session(i, &sessions[n++]);
	}
	LWLockRelease(ks_shared->lock);

	if (by_pid)
		qsort(sessions, n, sizeof(KsSession), ks_session_pid_cmp);
	*count = n;
	return sessions;
}

/* on_shmem_exit callback: free this backend's slot. */
static void
ks_unregister_session(int code, Datum arg)
{
	KsSlot	   *slot = &ks_shared->slots[DatumGetInt32(arg)];
	uint64		ended[KS_END_ROWS];
	int			n = 0;
	int			i;

	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	if (slot->pid == MyProcPid)
	{
		/* The history rows of the kills and disconnects aimed at it. */
		n = slot->n_end_rows;
		memcpy(ended, slot->end_rows, sizeof(uint64) * n);
		memset(slot, 0, sizeof(KsSlot));
	}
	LWLockRelease(ks_shared->lock);
	ks_my_sid = 0;
	for (i = 0; i < n; i++)
		ks_history_ended(ended[i]);
}

static void
ks_format_host(Port *port, char *host)
{
	char		addr[NI_MAXHOST];
	char		portno[NI_MAXSERV];

	if (port == NULL || port->raddr.addr.ss_family == AF_UNIX)
	{
		strlcpy(host, "localhost", KS_HOST_LEN);
		return;
	}
	if (pg_getnameinfo_all(&port->raddr.addr, port->raddr.salen,
						   addr, sizeof(addr), portno, sizeof(portno),
						   NI_NUMERICHOST | NI_NUMERICSERV) != 0)
	{
		host[0] = '\0';
		return;
	}
	if (port->raddr.addr.ss_family == AF_INET6)
		snprintf(host, KS_HOST_LEN, "[%s]:%s", addr, portno);
	else
		snprintf(host, KS_HOST_LEN, "%s:%s", addr, portno);
}

/*
 * Give this backend its client session ID.  Called once it has
 * authenticated; only client backends get here (walsenders are skipped by
 * the caller).
 */
void
ks_register_session(Port *port)
{
	int			procno = KS_MY_PROCNO;
	KsSlot	   *slot;
	char		host[KS_HOST_LEN];

	if (procno < 0 || procno >= ks_shared->nslots)
		elog(ERROR, "kill_session: PGPROC number %d out of range", procno);
	slot = &ks_shared->slots[procno];
	ks_format_host(port, host);

	/* Registered before the slot is filled, so that no exit can leak it. */
	on_shmem_exit(ks_unregister_session, Int32GetDatum(procno));

	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	memset(slot, 0, sizeof(KsSlot));
	pg_atomic_init_u32(&slot->cancel_state, KS_SQL_CANCEL_NONE);
	pg_atomic_init_u32(&slot->ask_answer, 0);
	pg_atomic_init_u32(&slot->idle_limit_ms, 0);
	pg_atomic_init_u32(&slot->idle_limit_scope, KS_LIMIT_SERVER);
	slot->sid = ks_next_sid_locked();
	slot->connect_time = GetCurrentTimestamp();
	namestrcpy(&slot->user_name, port->user_name ? port->user_name : "");
	namestrcpy(&slot->db_name, port->database_name ? port->database_name : "");
	memcpy(slot->host, host, KS_HOST_LEN);
	slot->pid = MyProcPid;
	ks_my_sid = slot->sid;
	LWLockRelease(ks_shared->lock);
}

/*
 * kill_session_set_next_id(bigint): a testing aid for the wrap of the ID
 * counter, not part of the extension's SQL interface.  A test declares it
 * itself (CREATE FUNCTION ... AS 'kill_session', 'kill_session_set_next_id'
 * LANGUAGE C), which already takes a superuser; the function checks that
 * too.  Setting the counter marks it wrapped, so from then on IDs still in
 * use are skipped and none is ever handed out twice at once.
 */
PG_FUNCTION_INFO_V1(kill_session_set_next_id);

Datum
kill_session_set_next_id(PG_FUNCTION_ARGS)
{
	int64		next = PG_GETARG_INT64(0);

	ks_check_loaded();
	if (!superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("must be superuser to set the next session ID")));
	if (next < 1 || next > PG_UINT32_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("session ID %lld is out of range", (long long) next)));

	LWLockAcquire(ks_shared->lock, LW_EXCLUSIVE);
	ks_shared->next_sid = (uint32) next;
	ks_shared->wrapped = true;
	LWLockRelease(ks_shared->lock);

	PG_RETURN_VOID();
}
