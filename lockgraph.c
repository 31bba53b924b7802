/*-------------------------------------------------------------------------
 *
 * lockgraph.c
 *		Who waits for whom: the lock graph, read once from the lock table,
 *		with the head of every waiter's chain.
 *
 * An edge runs from a waiting process to each process that blocks it, by
 * pg_blocking_pids()'s rule: it holds a lock that conflicts with the one
 * requested, or it waits ahead in the same lock's queue for a conflicting
 * mode.  A parallel worker stands for its leader, as there.
 *
 * The read holds every lock partition at once, in order, as
 * GetLockStatusData() (pg_locks) and GetBlockerStatusData()
 * (pg_blocking_pids()) hold them, so that no lock is granted or released
 * while it is read and the rows agree with each other.  While they are
 * held, it only copies, and copies each lock waited for once: the modes
 * its holders hold and its wait queue in order.  That is less than
 * pg_locks copies (every lock of every process) and no more than
 * GetBlockerStatusData() copies per lock; anyone may read v$session, so
 * nobody may stall the lock manager through it.  Everything else -- the
 * edges, their order, the heads -- is worked out after the release:
 *
 * - Each process of the graph gets a rank in the order blockers are shown
 *   (sessions by ID, then other processes).  Per lock, the holders and the
 *   waiters already passed are kept as one set of ranks per mode; a waiter
 *   takes the union of the sets of the modes its request conflicts with,
 *   so it costs the modes, not the length of the queue ahead of it.  Its
 *   blockers are then its holders' set and, apart from those, its
 *   queued-ahead set, read in rank order: sorted, and each once, without a
 *   sort.
 * - The head of a chain (FINAL_BLOCKING_SESSION) is the first session
 *   that blocks without being blocked, breadth first from the waiter along
 *   its blockers in the order they are shown.  A breadth-first walk from
 *   every waiter costs the whole graph per waiter; the same answer comes
 *   from one walk for all: the distance of every process to its nearest
 *   head (one breadth-first walk backwards from all heads at once), then,
 *   nearest first, each process takes the head of its first blocker one
 *   step nearer.  Breadth first with ordered neighbours finds the
 *   lexicographically first shortest path, and so does that choice, and a
 *   suffix of such a path is one too.  If no head can be reached, every
 *   path loops back: the sessions are in a deadlock the deadlock detector
 *   has not broken yet (deadlock_timeout), and the head is NULL with
 *   status DEADLOCK; or the only heads are no sessions (a prepared
 *   transaction, a background process): UNKNOWN.
 *
 * Fast-path locks need no reading: they are weak relation locks, which
 * conflict only with strong ones, and a strong request moves every
 * conflicting fast-path lock into the main table before it waits.  Blocks
 * that are not lock waits (serializable snapshots, predicate locks) are
 * not in the graph, as they are not in pg_locks' waits.
 *
 * A leaf: it calls nothing of the project but registry.c.
 *
 * Copyright (c) 2026, kill_session developers
 *
 * IDENTIFICATION
 *	  lockgraph.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "port/pg_bitutils.h"
#include "storage/lock.h"
#include "storage/lwlock.h"
#include "storage/proc.h"

#include "compat.h"
#include "kill_session.h"
#include "lockgraph.h"

/* A lock some process waits for, as copied under the partition locks. */
typedef struct KsLockCopy
{
	const LOCKMASK *conflicts;	/* its lock method's table (static) */
	int			first_holder;	/* holders[first_holder .. +nholders] */
	int			nholders;
	int			first_queued;	/* queued[first_queued .. +nqueued] */
	int			nqueued;
} KsLockCopy;

/* A process that holds such a lock, with the modes it holds. */
typedef struct KsHolderCopy
{
	int			leader;
	LOCKMASK	mask;
} KsHolderCopy;

/* A process in such a lock's queue, in its place, with what it asks. */
typedef struct KsQueuedCopy
{
	int			leader;
	LOCKMODE	mode;
} KsQueuedCopy;

/* Everything copied under the partition locks. */
typedef struct KsLockCopies
{
	KsLockCopy *locks;
	int			nlocks;
	KsHolderCopy *holders;
	int			nholders;
	int			holders_size;
	KsQueuedCopy *queued;		/* at most one entry per process */
	int			nqueued;
} KsLockCopies;

static int
ks_int_cmp(const void *a, const void *b)
{
	int			x = *(const int *) a;
	int			y = *(const int *) b;

	return (x > y) - (x < y);
}

static int
ks_lock_ptr_cmp(const void *a, const void *b)
{
	uintptr_t	x = (uintptr_t) *(LOCK *const *) a;
	uintptr_t	y = (uintptr_t) *(LOCK *const *) b;

	return (x > y) - (x < y);
}

/* The group leader of a process: itself unless it is a parallel worker. */
static PGPROC *
ks_leader(PGPROC *proc)
{
	return proc->lockGroupLeader != NULL ? proc->lockGroupLeader : proc;
}

/*
 * Copy, with every partition held, what every process waits for, and of
 * each lock waited for its holders' modes and its queue.
 */
static void
ks_copy_locks(KsLockCopies *c, KsLockGraph *graph)
{
	int			nprocs = ProcGlobal->allProcCount;
	LOCK	  **waited = palloc(sizeof(LOCK *) * nprocs);
	int			nwaited = 0;
	int			p;
	int			i;

	c->locks = palloc(sizeof(KsLockCopy) * nprocs);
	c->nlocks = 0;
	c->holders_size = nprocs;
	c->holders = palloc(sizeof(KsHolderCopy) * c->holders_size);
	c->nholders = 0;
	c->queued = palloc(sizeof(KsQueuedCopy) * nprocs);
	c->nqueued = 0;
	graph->waits = palloc(sizeof(KsWait) * nprocs);
	graph->nwaits = 0;

	for (i = 0; i < NUM_LOCK_PARTITIONS; i++)
		LWLockAcquire(LockHashPartitionLockByIndex(i), LW_SHARED);

	for (p = 0; p < nprocs; p++)
	{
		PGPROC	   *proc = &ProcGlobal->allProcs[p];

		if (proc->pid == 0)
			continue;
		graph->waits[graph->nwaits].pid = proc->pid;
		graph->waits[graph->nwaits].wait_event_info =
			*(volatile uint32 *) &proc->wait_event_info;
		graph->nwaits++;
		if (proc->waitLock != NULL)
			waited[nwaited++] = proc->waitLock;
	}

	/* Each lock once, however many wait for it. */
	qsort(waited, nwaited, sizeof(LOCK *), ks_lock_ptr_cmp);
	for (i = 0; i < nwaited; i++)
	{
		LOCK	   *lock = waited[i];
		KsLockCopy *l;
		PROCLOCK   *proclock;
		PGPROC	   *q;

		if (i > 0 && waited[i - 1] == lock)
			continue;
		l = &c->locks[c->nlocks++];
		l->conflicts = GetLocksMethodTable(lock)->conflictTab;
		l->first_holder = c->nholders;
		for (proclock = ks_first_proclock(lock); proclock != NULL;
			 proclock = ks_next_proclock(lock, proclock))
		{
			if (proclock->holdMask == 0)
				continue;
			if (c->nholders == c->holders_size)
			{
				c->holders_size *= 2;
				c->holders = repalloc(c->holders,
									  sizeof(KsHolderCopy) * c->holders_size);
			}
			c->holders[c->nholders].leader = proclock->groupLeader->pid;
			c->holders[c->nholders].mask = proclock->holdMask;
			c->nholders++;
		}
		l->nholders = c->nholders - l->first_holder;
		l->first_queued = c->nqueued;
		for (q = ks_first_waiter(lock); q != NULL && c->nqueued < nprocs;
			 q = ks_next_waiter(lock, q))
		{
			c->queued[c->nqueued].leader = ks_leader(q)->pid;
			c->queued[c->nqueued].mode = q->waitLockMode;
			c->nqueued++;
		}
		l->nqueued = c->nqueued - l->first_queued;
	}

	for (i = NUM_LOCK_PARTITIONS; --i >= 0;)
		LWLockRelease(LockHashPartitionLockByIndex(i));

	pfree(waited);
	qsort(graph->waits, graph->nwaits, sizeof(KsWait), ks_int_cmp);
}

/* The process pid's index in graph->nodes, or -1. */
static int
ks_node_index(const KsLockGraph *graph, int pid)
{
	int			lo = 0;
	int			hi = graph->nnodes;

	while (lo < hi)
	{
		int			mid = (lo + hi) / 2;

		if (graph->nodes[mid].pid < pid)
			lo = mid + 1;
		else if (graph->nodes[mid].pid > pid)
			hi = mid;
		else
			return mid;
	}
	return -1;
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

/* The order blockers are shown in: sessions by ID, then other processes. */
static int
ks_rank_cmp(const void *a, const void *b, void *arg)
{
	const KsGraphNode *nodes = arg;
	const KsGraphNode *x = &nodes[*(const int *) a];
	const KsGraphNode *y = &nodes[*(const int *) b];

	if ((x->sid == 0) != (y->sid == 0))
		return x->sid == 0 ? 1 : -1;
	if (x->sid != y->sid)
		return (x->sid > y->sid) - (x->sid < y->sid);
	return (x->pid > y->pid) - (x->pid < y->pid);
}

/*
 * The processes of the graph, once each, sorted by PID, with their session
 * IDs; and their ranks in the order blockers are shown.
 */
static void
ks_build_nodes(KsLockGraph *graph, const KsLockCopies *c,
			   const KsSession *sessions, int nsessions, int **by_rank,
			   int **rank_of)
{
	int		   *pids = palloc(sizeof(int) * (c->nholders + c->nqueued + 1));
	int			npids = 0;
	int			i;

	for (i = 0; i < c->nholders; i++)
		pids[npids++] = c->holders[i].leader;
	for (i = 0; i < c->nqueued; i++)
		pids[npids++] = c->queued[i].leader;
	qsort(pids, npids, sizeof(int), ks_int_cmp);
	graph->nodes = palloc0(sizeof(KsGraphNode) * Max(npids, 1));
	graph->nnodes = 0;
	for (i = 0; i < npids; i++)
	{
		KsGraphNode *node;

		if (i > 0 && pids[i] == pids[i - 1])
			continue;
		node = &graph->nodes[graph->nnodes++];
		node->pid = pids[i];
		node->sid = ks_pid_session(sessions, nsessions, pids[i]);
	}
	pfree(pids);

	*by_rank = palloc(sizeof(int) * Max(graph->nnodes, 1));
	*rank_of = palloc(sizeof(int) * Max(graph->nnodes, 1));
	for (i = 0; i < graph->nnodes; i++)
		(*by_rank)[i] = i;
	qsort_arg(*by_rank, graph->nnodes, sizeof(int), ks_rank_cmp, graph->nodes);
	for (i = 0; i < graph->nnodes; i++)
		(*rank_of)[(*by_rank)[i]] = i;
}

#define KS_BITS_WORDS(n)	(((n) + 63) / 64)
#define KS_BIT_SET(bits, i)	((bits)[(i) / 64] |= UINT64CONST(1) << ((i) % 64))
#define KS_BIT_CLEAR(bits, i)	((bits)[(i) / 64] &= ~(UINT64CONST(1) << ((i) % 64)))

/*
 * The edges of the copied locks, as sets of processes by rank: for each
 * waiter in each queue, the holders whose modes conflict with its request
 * and the waiters ahead of it that ask for such a mode.  Per lock, the
 * holders and the waiters already passed are kept as one set per mode, so
 * that a waiter costs the modes it conflicts with, whatever the length of
 * the queue.  Then, per waiting process (the workers of a parallel query
 * can wait on several locks), the union of its sets: the holders in the
 * order shown, then those queued ahead that do not hold too; neither a
 * process nor its lock group blocks itself.
 */
static void
ks_build_blocks(KsLockGraph *graph, const KsLockCopies *c,
				const int *by_rank, const int *rank_of)
{
	int			nwords = KS_BITS_WORDS(graph->nnodes);
	uint64	   *run_bits = palloc0(sizeof(uint64) * nwords * 2 *
								   Max(c->nqueued, 1));
	uint64	   *held = palloc0(sizeof(uint64) * nwords * MAX_LOCKMODES);
	uint64	   *ahead = palloc0(sizeof(uint64) * nwords * MAX_LOCKMODES);
	int		   *run_node = palloc(sizeof(int) * Max(c->nqueued, 1));
	int		   *first_run = palloc0(sizeof(int) * (graph->nnodes + 1));
	int		   *runs = palloc(sizeof(int) * Max(c->nqueued, 1));
	int		   *fill = palloc(sizeof(int) * (graph->nnodes + 1));
	uint64	   *acc_held = palloc(sizeof(uint64) * nwords);
	uint64	   *acc_ahead = palloc(sizeof(uint64) * nwords);
	int			size = Max(c->nqueued, 16);
	int			i;
	int			n;

	for (i = 0; i < c->nlocks; i++)
	{
		const KsLockCopy *l = &c->locks[i];
		LOCKMASK	touched = 0;
		int			k;
		int			m;

		for (k = l->first_holder; k < l->first_holder + l->nholders; k++)
		{
			int			r = rank_of[ks_node_index(graph, c->holders[k].leader)];

			for (m = 1; m < MAX_LOCKMODES; m++)
				if (c->holders[k].mask & LOCKBIT_ON(m))
					KS_BIT_SET(&held[m * nwords], r);
			touched |= c->holders[k].mask;
		}
		for (k = l->first_queued; k < l->first_queued + l->nqueued; k++)
		{
			const KsQueuedCopy *w = &c->queued[k];
			LOCKMASK	conflicts = l->conflicts[w->mode] & touched;
			uint64	   *run_held = &run_bits[(size_t) k * 2 * nwords];
			uint64	   *run_ahead = run_held + nwords;
			int			j;

			run_node[k] = ks_node_index(graph, w->leader);
			for (m = 1; m < MAX_LOCKMODES; m++)
			{
				if (!(conflicts & LOCKBIT_ON(m)))
					continue;
				for (j = 0; j < nwords; j++)
				{
					run_held[j] |= held[m * nwords + j];
					run_ahead[j] |= ahead[m * nwords + j];
				}
			}
			if (w->mode > 0 && w->mode < MAX_LOCKMODES)
			{
				KS_BIT_SET(&ahead[w->mode * nwords], rank_of[run_node[k]]);
				touched |= LOCKBIT_ON(w->mode);
			}
		}
		for (m = 1; m < MAX_LOCKMODES; m++)
			if (touched & LOCKBIT_ON(m))
			{
				memset(&held[m * nwords], 0, sizeof(uint64) * nwords);
				memset(&ahead[m * nwords], 0, sizeof(uint64) * nwords);
			}
	}

	/* The runs of each waiting process, by its node. */
	for (i = 0; i < c->nqueued; i++)
		first_run[run_node[i] + 1]++;
	for (i = 0; i < graph->nnodes; i++)
		first_run[i + 1] += first_run[i];
	memcpy(fill, first_run, sizeof(int) * graph->nnodes);
	for (i = 0; i < c->nqueued; i++)
		runs[fill[run_node[i]]++] = i;

	graph->blocks = palloc(sizeof(KsBlock) * size);
	graph->nblocks = 0;
	for (n = 0; n < graph->nnodes; n++)
	{
		KsGraphNode *node = &graph->nodes[n];
		int			pass;
		int			j;

		if (first_run[n] == first_run[n + 1])
			continue;
		node->waiting = true;
		node->first_block = graph->nblocks;
		memset(acc_held, 0, sizeof(uint64) * nwords);
		memset(acc_ahead, 0, sizeof(uint64) * nwords);
		for (i = first_run[n]; i < first_run[n + 1]; i++)
		{
			uint64	   *run_held = &run_bits[(size_t) runs[i] * 2 * nwords];

			for (j = 0; j < nwords; j++)
			{
				acc_held[j] |= run_held[j];
				acc_ahead[j] |= run_held[nwords + j];
			}
		}
		KS_BIT_CLEAR(acc_held, rank_of[n]);
		for (j = 0; j < nwords; j++)
			acc_ahead[j] &= ~acc_held[j];
		KS_BIT_CLEAR(acc_ahead, rank_of[n]);
		for (pass = 0; pass < 2; pass++)
		{
			uint64	   *bits = pass == 0 ? acc_held : acc_ahead;

			for (j = 0; j < nwords; j++)
			{
				uint64		word = bits[j];

				while (word != 0)
				{
					int			bit = pg_rightmost_one_pos64(word);
					int			b = by_rank[j * 64 + bit];
					KsBlock    *block;

					word &= word - 1;
					if (graph->nblocks == size)
					{
						size *= 2;
						graph->blocks = repalloc_huge(graph->blocks,
													  sizeof(KsBlock) * size);
					}
					block = &graph->blocks[graph->nblocks++];
					block->waiter = node->pid;
					block->blocker = graph->nodes[b].pid;
					block->blocker_id = graph->nodes[b].sid;
					block->blocker_node = b;
					block->holds = pass == 0;
				}
			}
		}
		node->nblocks = graph->nblocks - node->first_block;
	}

	pfree(run_bits);
	pfree(held);
	pfree(ahead);
	pfree(run_node);
	pfree(first_run);
	pfree(runs);
	pfree(fill);
	pfree(acc_held);
	pfree(acc_ahead);
}

/*
 * The head of every process's chain, as the file's header says: one walk
 * backwards from every head at once gives each process its distance to
 * the nearest; nearest first, each takes the head of its first blocker
 * one step nearer.  One more walk backwards from the heads that are no
 * sessions tells UNKNOWN from DEADLOCK.
 */
static void
ks_find_heads(KsLockGraph *graph)
{
	int			nnodes = graph->nnodes;
	int		   *rev_start = palloc0(sizeof(int) * (nnodes + 1));
	int		   *rev = palloc(sizeof(int) * Max(graph->nblocks, 1));
	int		   *fill = palloc(sizeof(int) * (nnodes + 1));
	int		   *dist = palloc(sizeof(int) * Max(nnodes, 1));
	int		   *queue = palloc(sizeof(int) * Max(nnodes, 1));
	bool	   *other = palloc0(sizeof(bool) * Max(nnodes, 1));
	int			head = 0;
	int			tail = 0;
	int			i;
	int			n;

	/* The graph backwards: for each process, the waiters it blocks. */
	for (i = 0; i < graph->nblocks; i++)
		rev_start[graph->blocks[i].blocker_node + 1]++;
	for (i = 0; i < nnodes; i++)
		rev_start[i + 1] += rev_start[i];
	memcpy(fill, rev_start, sizeof(int) * (nnodes + 1));
	for (n = 0; n < nnodes; n++)
		for (i = graph->nodes[n].first_block;
			 i < graph->nodes[n].first_block + graph->nodes[n].nblocks; i++)
			rev[fill[graph->blocks[i].blocker_node]++] = n;

	/* The heads: sessions that are not blocked. */
	for (i = 0; i < nnodes; i++)
	{
		KsGraphNode *node = &graph->nodes[i];

		dist[i] = -1;
		node->head_id = 0;
		node->head_status = "DEADLOCK";
		if (node->nblocks == 0)
		{
			node->head_id = node->sid;
			if (node->head_id != 0)
			{
				node->head_status = "VALID";
				dist[i] = 0;
				queue[tail++] = i;
			}
		}
	}
	while (head < tail)
	{
		int			v = queue[head++];
		int			j;

		for (j = rev_start[v]; j < rev_start[v + 1]; j++)
		{
			int			u = rev[j];

			if (dist[u] < 0)
			{
				dist[u] = dist[v] + 1;
				queue[tail++] = u;
			}
		}
	}

	/* Nearest first: the queue holds them in that order. */
	for (i = 0; i < tail; i++)
	{
		KsGraphNode *node = &graph->nodes[queue[i]];
		int			j;

		if (dist[queue[i]] == 0)
			continue;
		for (j = node->first_block; j < node->first_block + node->nblocks; j++)
		{
			int			b = graph->blocks[j].blocker_node;

			if (dist[b] == dist[queue[i]] - 1)
			{
				node->head_id = graph->nodes[b].head_id;
				node->head_status = "VALID";
				break;
			}
		}
	}

	/* The rest reach no session head: do they reach another head? */
	head = tail = 0;
	for (i = 0; i < nnodes; i++)
		if (graph->nodes[i].nblocks == 0 && dist[i] < 0)
		{
			other[i] = true;
			queue[tail++] = i;
		}
	while (head < tail)
	{
		int			v = queue[head++];
		int			j;

		for (j = rev_start[v]; j < rev_start[v + 1]; j++)
			if (!other[rev[j]])
			{
				other[rev[j]] = true;
				queue[tail++] = rev[j];
			}
	}
	for (i = 0; i < nnodes; i++)
		if (dist[i] < 0 && other[i])
			graph->nodes[i].head_status = "UNKNOWN";

	pfree(rev_start);
	pfree(rev);
	pfree(fill);
	pfree(dist);
	pfree(queue);
	pfree(other);
}

/*
 * Read the lock graph at one moment; sessions, sorted by PID, name the
 * processes that are client sessions.
 */
void
ks_lock_graph_read(KsLockGraph *graph, const KsSession *sessions,
				   int nsessions)
{
	KsLockCopies c;
	int		   *by_rank;
	int		   *rank_of;

	ks_copy_locks(&c, graph);
	ks_build_nodes(graph, &c, sessions, nsessions, &by_rank, &rank_of);
	ks_build_blocks(graph, &c, by_rank, rank_of);
	ks_find_heads(graph);
	pfree(by_rank);
	pfree(rank_of);
	pfree(c.locks);
	pfree(c.holders);
	pfree(c.queued);
}

/* The process pid in the graph, NULL if it neither waits nor blocks. */
const KsGraphNode *
ks_lock_graph_node(const KsLockGraph *graph, int pid)
{
	int			i = ks_node_index(graph, pid);

	return i >= 0 ? &graph->nodes[i] : NULL;
}

/* What pid waited for at the read, 0 if nothing or not known. */
uint32
ks_lock_graph_wait_event(const KsLockGraph *graph, int pid)
{
	KsWait	   *wait = bsearch(&pid, graph->waits, graph->nwaits,
							   sizeof(KsWait), ks_int_cmp);

	return wait != NULL ? wait->wait_event_info : 0;
}
