# v$session on long lock queues, as a DDL stuck behind a long transaction
# builds them in real life: 300 waiters on one lock (KS_QUEUE_WAITERS;
# fewer under Valgrind).  Every waiter's
# blockers are those pg_blocking_pids() names (as session IDs), and the
# head of every chain is the one a breadth-first walk along them finds.
# Then a deadlock with a queue behind it (DEADLOCK for all), and a prepared
# transaction as the only head (UNKNOWN).

use strict;
use warnings FATAL => 'all';
use FindBin;
use lib $FindBin::RealBin;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use KsNode;
use KsWire;

my $waiters = $ENV{KS_QUEUE_WAITERS} // 300;
my $node = ks_node('queue', qq{
max_connections = @{[ $waiters + 60 ]}
max_prepared_transactions = 2
deadlock_timeout = '10min'
});
$node->safe_psql('postgres', q{
	CREATE TABLE ddl (a int);
	CREATE TABLE mixed (a int);
	CREATE TABLE loop_a (a int);
	CREATE TABLE loop_b (a int);
	CREATE TABLE prepared (a int);
});
my $dba = KsWire->connect($node);

# Wait until n sessions wait for a lock.
sub wait_for_waiters
{
	my ($n, $what) = @_;
	for (my $i = 0;; $i++)
	{
		last if $dba->value(q{SELECT count(*) FROM pg_locks WHERE NOT granted}) >= $n;
		die "$what: the waiters did not all wait" if $i > 6000 * ks_slow();
		usleep(10_000);
	}
}

# Every waiting session's row of v$session, with what pg_blocking_pids()
# says of it in session IDs, sorted.
sub waiting_rows
{
	my $r = $dba->query(q{
		SELECT v.sid, v.blocking_session_status, v.blocking_session,
			   array_to_string(v.blocking_sessions, ' '),
			   v.final_blocking_session_status, v.final_blocking_session,
			   array_to_string(ARRAY(SELECT p.id FROM unnest(pg_blocking_pids(v."serial#")) b
									 JOIN processlist p ON p.pid = b ORDER BY 1), ' ')
		FROM v$session v
		WHERE v.blocking_session_status <> 'NOT IN WAIT'});
	die $r->{error}{M} if $r->{error};
	return $r->{rows};
}

# The head a breadth-first walk finds from sid along the blockers in the
# order v$session lists them: the first session that is not blocked.  A
# waiting session blocked only by processes that are no sessions (a
# prepared transaction) lists no blockers but is blocked all the same;
# one that waits with no holder at all is not.
sub bfs_head
{
	my ($blockers, $status, $sid) = @_;
	my @queue = ($sid);
	my %seen = ($sid => 1);
	while (@queue)
	{
		my $p = shift @queue;
		my $b = $blockers->{$p};
		return $p if $p ne $sid && (!exists $status->{$p} || $status->{$p} eq 'NO HOLDER');
		for my $q (@{ $b // [] })
		{
			push @queue, $q unless $seen{$q}++;
		}
	}
	return undef;
}

# Check every waiting row against pg_blocking_pids() and the walk.
sub check_graph
{
	my ($what, $count, $head) = @_;
	my $rows = waiting_rows();
	is(scalar @$rows, $count, "$what: $count sessions wait");
	my %blockers = map { $_->[0] => [ split / /, $_->[3] ] } @$rows;
	my %status = map { $_->[0] => $_->[1] } @$rows;
	my (@wrong_set, @wrong_first, @wrong_head);
	for my $row (@$rows)
	{
		my ($sid, $status, $first, $list, $fstatus, $final, $pg) = @$row;
		my $mine = join(' ', sort { $a <=> $b } split / /, $list);
		push @wrong_set, "$sid: [$mine] vs [$pg]" if $mine ne $pg;
		push @wrong_first, $sid
		  unless $status eq 'VALID' && defined $first && $list =~ /^\Q$first\E\b/;
		my $want = bfs_head(\%blockers, \%status, $sid);
		push @wrong_head, "$sid: " . ($final // 'NULL') . " vs " . ($want // 'NULL')
		  unless defined $final && defined $want && $final eq $want
		  && $fstatus eq 'VALID';
		push @wrong_head, "$sid: head $final, not $head" if defined $head && ($final // '') ne $head;
	}
	is_deeply(\@wrong_set, [], "$what: every waiter's blockers are those pg_blocking_pids() names");
	is_deeply(\@wrong_first, [], "$what: blocking_session is the first of them, status VALID");
	is_deeply(\@wrong_head, [], "$what: every head is the walk's, status VALID");
	return $rows;
}

# ---- a DDL stuck behind a long transaction -----------------------------

# S read the table in a transaction and went idle; an ALTER TABLE waits
# for S, and every reader after it waits behind the ALTER.
my $s = KsWire->connect($node);
$s->query('BEGIN; SELECT * FROM ddl');
my $sid = $s->session_id;
my $alter = KsWire->connect($node);
my $alter_id = $alter->session_id;
$alter->send_query('ALTER TABLE ddl ADD COLUMN b int');
wait_for_waiters(1, 'ddl');
my @readers = map { KsWire->connect($node) } 2 .. $waiters;
$_->send_query('SELECT count(*) FROM ddl') for @readers;
wait_for_waiters($waiters, 'ddl');
my $rows = check_graph('a DDL queue', $waiters, $sid);
my %row = map { $_->[0] => $_ } @$rows;
is($row{$alter_id}[3], $sid, 'the ALTER waits for S alone');
is(scalar(grep { $_->[3] eq $alter_id } @$rows), $waiters - 1,
	'each reader waits for the ALTER alone (it is queued ahead, in a conflicting mode)');

# Killing the head releases the whole queue.
is($dba->value("SELECT kill_session('$sid')"), 't', 'the head is killed');
is($alter->read_result(60)->{error}, undef, 'the ALTER completes');
my $done = 0;
for my $r (@readers)
{
	my $res = $r->read_result(60);
	$done++ unless $res->{error};
}
is($done, $waiters - 1, 'and then every reader');
$_->close for @readers, $alter, $s;

# ---- every table lock mode, queued ---------------------------------------

# One holder of SHARE; then sessions asking in turn every table lock
# mode, each in a transaction: those that are granted hold, the others
# wait, holders and waiters ahead block them by their modes.
my @modes = ('ACCESS SHARE', 'ROW SHARE', 'ROW EXCLUSIVE',
	'SHARE UPDATE EXCLUSIVE', 'SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE',
	'ACCESS EXCLUSIVE');
my $holder = KsWire->connect($node);
$holder->query('BEGIN; LOCK mixed IN SHARE MODE');
my @mixed;
for my $i (0 .. $waiters - 1)
{
	my $c = KsWire->connect($node);
	$c->send_query("BEGIN; LOCK mixed IN $modes[$i % @modes] MODE");
	push @mixed, $c;
}
# Settled: every session holds its lock or waits for it.
for (my $i = 0;; $i++)
{
	last if $dba->value(q{SELECT count(*) FROM pg_locks
		WHERE locktype = 'relation' AND relation = 'mixed'::regclass})
	  == $waiters + 1;
	die 'mixed: the queue did not settle' if $i > 6000 * ks_slow();
	usleep(10_000);
}
my $nwaiting = $dba->value(q{SELECT count(*) FROM pg_locks WHERE NOT granted});
cmp_ok($nwaiting, '>', $waiters / 2, "mixed modes: $nwaiting of $waiters wait");
check_graph('mixed modes', $nwaiting, undef);
$dba->query(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()});
$_->close for @mixed, $holder;
for (my $i = 0;; $i++)
{
	last if $dba->value(q{SELECT count(*) FROM pg_stat_activity
		WHERE backend_type = 'client backend'}) == 1;
	die 'the sessions did not end' if $i > 6000 * ks_slow();
	usleep(10_000);
}

# ---- a deadlock not broken yet, with a queue behind it ------------------

my $one = KsWire->connect($node);
my $two = KsWire->connect($node);
$one->query('BEGIN; LOCK loop_a');
$two->query('BEGIN; LOCK loop_b');
$one->send_query('LOCK loop_b');
$two->send_query('LOCK loop_a');
my $nbehind = $waiters < 50 ? $waiters : 50;
my @behind = map { KsWire->connect($node) } 1 .. $nbehind;
$_->send_query('BEGIN; LOCK loop_a') for @behind;
wait_for_waiters($nbehind + 2, 'deadlock');
$rows = waiting_rows();
is(scalar @$rows, $nbehind + 2, 'deadlock: ' . ($nbehind + 2) . ' sessions wait');
is(scalar(grep { $_->[4] eq 'DEADLOCK' && !defined $_->[5] } @$rows), $nbehind + 2,
	'every head is NULL with status DEADLOCK');
$dba->query(q{SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()});
$_->close for @behind, $one, $two;

# ---- a prepared transaction as the only head ----------------------------

$dba->query(q{BEGIN; LOCK prepared; PREPARE TRANSACTION 'held'});
my @prep = map { KsWire->connect($node) } 1 .. 10;
$_->send_query('BEGIN; LOCK prepared IN ACCESS SHARE MODE') for @prep;
wait_for_waiters(10, 'prepared');
$rows = waiting_rows();
is(scalar(grep { $_->[1] eq 'UNKNOWN' && $_->[4] eq 'UNKNOWN' && !defined $_->[5] } @$rows),
	10, 'behind a prepared transaction: blocker and head UNKNOWN');
$dba->query(q{ROLLBACK PREPARED 'held'});
$_->read_result(60) for @prep;
$_->close for @prep;

$dba->close;
$node->stop;
done_testing();
