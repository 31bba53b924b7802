/*-------------------------------------------------------------------------
 *
 * compat.h
 *		The differences between the supported PostgreSQL versions, 15 to
 *		18, in one place, so that the other files read as if there were
 *		one PostgreSQL.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  compat.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef KS_COMPAT_H
#define KS_COMPAT_H

#if PG_VERSION_NUM < 150000
#error "kill_session needs PostgreSQL 15 or later"
#endif

#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/backend_status.h"
#include "utils/formatting.h"
#if PG_VERSION_NUM >= 160000
#include "varatt.h"
#endif
#if PG_VERSION_NUM >= 180000
#include "storage/waiteventset.h"
#endif

/* A function that never returns: pg_noreturn, before it, from 18 on. */
#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

/* This backend's PGPROC number. */
#if PG_VERSION_NUM >= 170000
#define KS_MY_PROCNO	MyProcNumber
#else
#define KS_MY_PROCNO	(MyProc->pgprocno)
#endif

/* Any PGPROC, for SendProcSignal() to find by PID. */
#if PG_VERSION_NUM >= 170000
#define KS_ANY_PROCNO	INVALID_PROC_NUMBER
#else
#define KS_ANY_PROCNO	InvalidBackendId
#endif

/* A PGPROC's local transaction ID, InvalidLocalTransactionId if none. */
#if PG_VERSION_NUM >= 170000
#define KS_PROC_LXID(proc)	((proc)->vxid.lxid)
#else
#define KS_PROC_LXID(proc)	((proc)->lxid)
#endif

/*
 * A wait event set that no resource owner tracks: from 17 CreateWaitEventSet()
 * takes a resource owner (NULL: none, the set in TopMemoryContext), before
 * it a memory context.  Either way nothing frees it, or closes its epoll
 * descriptor, on an error: the caller frees it on every path (PG_FINALLY).
 */
#if PG_VERSION_NUM >= 170000
#define ks_create_wait_event_set(nevents) CreateWaitEventSet(NULL, (nevents))
#else
#define ks_create_wait_event_set(nevents) \
	CreateWaitEventSet(CurrentMemoryContext, (nevents))
#endif

/* A PGPROC's number. */
#if PG_VERSION_NUM >= 170000
#define KS_PROCNO(proc)	GetNumberFromPGProc(proc)
#else
#define KS_PROCNO(proc)	((proc)->pgprocno)
#endif

/*
 * The first option of GRANT role ... WITH x OPTION, upper case, or NULL:
 * only ADMIN up to 15 (a flag), ADMIN, INHERIT or SET from 16 (a list).
 */
#if PG_VERSION_NUM >= 160000
#define ks_grant_role_option(grs) \
	((grs)->opt == NIL ? NULL : \
	 asc_toupper(linitial_node(DefElem, (grs)->opt)->defname, \
				 strlen(linitial_node(DefElem, (grs)->opt)->defname)))
#else
#define ks_grant_role_option(grs) ((grs)->admin_opt ? "ADMIN" : NULL)
#endif

/* USAGE on a foreign server: 16 folded the per-kind ACL checks into one. */
#if PG_VERSION_NUM >= 160000
#define ks_server_aclcheck(serverid, roleid) \
	object_aclcheck(ForeignServerRelationId, (serverid), (roleid), ACL_USAGE)
#else
#define ks_server_aclcheck(serverid, roleid) \
	pg_foreign_server_aclcheck((serverid), (roleid), ACL_USAGE)
#endif

/*
 * A lock's PROCLOCKs (its holders and waiters) and its wait queue, in
 * order, each ending in NULL: shared memory queues up to 15, ilists from
 * 16.  The caller holds the lock's partition lock.
 */
#if PG_VERSION_NUM >= 160000
static inline PROCLOCK *
ks_first_proclock(LOCK *lock)
{
	return dlist_is_empty(&lock->procLocks) ? NULL :
		dlist_container(PROCLOCK, lockLink, dlist_head_node(&lock->procLocks));
}

static inline PROCLOCK *
ks_next_proclock(LOCK *lock, PROCLOCK *proclock)
{
	return !dlist_has_next(&lock->procLocks, &proclock->lockLink) ? NULL :
		dlist_container(PROCLOCK, lockLink,
						dlist_next_node(&lock->procLocks, &proclock->lockLink));
}

static inline PGPROC *
ks_first_waiter(LOCK *lock)
{
	return dclist_is_empty(&lock->waitProcs) ? NULL :
		dlist_container(PGPROC, links, dclist_head_node(&lock->waitProcs));
}

static inline PGPROC *
ks_next_waiter(LOCK *lock, PGPROC *proc)
{
	return !dclist_has_next(&lock->waitProcs, &proc->links) ? NULL :
		dlist_container(PGPROC, links,
						dclist_next_node(&lock->waitProcs, &proc->links));
}
#else
static inline PROCLOCK *
ks_first_proclock(LOCK *lock)
{
	return (PROCLOCK *) SHMQueueNext(&lock->procLocks, &lock->procLocks,
									 offsetof(PROCLOCK, lockLink));
}

static inline PROCLOCK *
ks_next_proclock(LOCK *lock, PROCLOCK *proclock)
{
	return (PROCLOCK *) SHMQueueNext(&lock->procLocks, &proclock->lockLink,
									 offsetof(PROCLOCK, lockLink));
}

static inline PGPROC *
ks_first_waiter(LOCK *lock)
{
	return (PGPROC *) SHMQueueNext(&lock->waitProcs.links,
								   &lock->waitProcs.links,
								   offsetof(PGPROC, links));
}

static inline PGPROC *
ks_next_waiter(LOCK *lock, PGPROC *proc)
{
	return (PGPROC *) SHMQueueNext(&lock->waitProcs.links, &proc->links,
								   offsetof(PGPROC, links));
}
#endif

/*
 * Whether proc holds no lock in the main lock table, as its lists say at
 * this instant, read without the partition locks: a hint, for a process
 * that no other can then be waiting for (a lock taken by the fast path is
 * moved into the main table before anyone waits for it).
 */
static inline bool
ks_proc_holds_no_lock(PGPROC *proc)
{
	int			i;

	for (i = 0; i < NUM_LOCK_PARTITIONS; i++)
	{
#if PG_VERSION_NUM >= 160000
		if (!dlist_is_empty(&proc->myProcLocks[i]))
			return false;
#else
		if (proc->myProcLocks[i].next != &proc->myProcLocks[i])
			return false;
#endif
	}
	return true;
}

/*
 * The backend status entry, in place in shared memory, of the client
 * backend whose PGPROC number is procno, or NULL: pgstat_beinit() puts a
 * backend's entry at its PGPROC number from 17 on, at its backend ID - 1
 * before, and this backend's own, MyBEEntry, shows where the array starts.
 * Read it as backend_status.h says, between pgstat_begin_read_activity()
 * and pgstat_end_read_activity(), and check st_procpid.
 */
static inline volatile PgBackendStatus *
ks_status_entry(int procno)
{
	if (MyBEEntry == NULL || procno < 0 || procno >= MaxBackends)
		return NULL;
#if PG_VERSION_NUM >= 170000
	return MyBEEntry - MyProcNumber + procno;
#else
	{
		BackendId	id = GetPGProcByNumber(procno)->backendId;

		if (MyBackendId < 1 || id < 1 || id > MaxBackends)
			return NULL;
		return MyBEEntry - (MyBackendId - 1) + (id - 1);
	}
#endif
}

/*
 * A setting's extra: from 16 on PostgreSQL frees it with guc_free(), which
 * wants guc_malloc()'s memory; before, with free().
 */
#if PG_VERSION_NUM >= 160000
#define ks_guc_malloc(size)	guc_malloc(LOG, (size))
#else
#define ks_guc_malloc(size)	malloc(size)
#endif

/* Turning query IDs on, as pg_stat_statements does, from _PG_init. */
#if PG_VERSION_NUM >= 160000
#include "nodes/queryjumble.h"
#else
#include "utils/queryjumble.h"
#endif

#endif							/* KS_COMPAT_H */
