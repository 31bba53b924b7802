# Killing your own session.  The rule: the statement that kills its own
# session completes and its whole result reaches the client; right after,
# the session ends with FATAL 57P01 before it would ever report itself
# ready for another query, so nothing else the client sent runs or
# commits.  Each case asserts what the client received, in order, and what
# is in the tables afterwards, over the simple and extended protocols,
# pipelined, and through pgbouncer.

use strict;
use warnings FATAL => 'all';
use lib 't';
use KsNode;
use KsWire;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);

my $node = ks_node('main', "max_connections = 40\n");
$node->safe_psql('postgres', q{
	CREATE TABLE t (a int);
	CREATE TABLE r (a int);
	CREATE RULE r_also AS ON INSERT TO r DO ALSO INSERT INTO t VALUES (new.a);
	GRANT ALL ON t, r TO PUBLIC;
	CREATE ROLE dba LOGIN;
	GRANT ALTER SYSTEM ON PARAMETER kill_session.kill TO dba;
	GRANT SELECT ON pg_largeobject_metadata TO dba;
});

sub table_rows
{
	my ($table) = @_;
	return $node->safe_psql('postgres',
		"SELECT coalesce(string_agg(a::text, ',' ORDER BY a), '') FROM $table");
}

sub reset_tables { $node->safe_psql('postgres', 'TRUNCATE t, r'); }

my $KILLED = [ 'E:FATAL:57P01', 'EOF' ];

# A new session of role dba, and its kill statement.
sub session
{
	my $c = KsWire->connect($node, user => 'dba', @_);
	my $id = $c->session_id;
	return ($c, $id, "SELECT kill_session('$id')");
}

# -- Simple protocol ------------------------------------------------------

my ($c, $id, $kill) = session();
$c->send_query($kill);
is_deeply($c->trace(10), [ 'T', 'D:t', 'C:SELECT 1', @$KILLED ],
	'simple: the result, then FATAL 57P01, and never ReadyForQuery');
is($c->last_error->{D}, "Session $id was killed by itself.",
	'simple: the DETAIL says the session killed itself');

($c, $id, $kill) = session();
$c->send_query($kill);
$c->send_query('INSERT INTO t VALUES (1)');
is_deeply($c->trace(10), [ 'T', 'D:t', 'C:SELECT 1', @$KILLED ],
	'a statement queued behind the kill: not answered');
is(table_rows('t'), '', 'a statement queued behind the kill never ran');

# A query string: its implicit transaction commits as its last statement
# completes, so a kill as the last statement keeps what came before it...
($c, $id, $kill) = session();
$c->send_query("INSERT INTO t VALUES (2); $kill");
is_deeply($c->trace(10), [ 'C:INSERT 0 1', 'T', 'D:t', 'C:SELECT 1', @$KILLED ],
	'query string ending with the kill: both results, then FATAL');
is(table_rows('t'), '2', 'query string ending with the kill: committed');
reset_tables();

# ... and a kill before its end ends it there: nothing of it commits.
($c, $id, $kill) = session();
$c->send_query("INSERT INTO t VALUES (3); $kill; INSERT INTO t VALUES (4)");
is_deeply($c->trace(10), [ 'C:INSERT 0 1', 'T', 'D:t', 'C:SELECT 1', @$KILLED ],
	'query string going on after the kill: FATAL after the kill');
is(table_rows('t'), '', 'query string going on after the kill: nothing committed');

($c, $id, $kill) = session();
$c->send_query("BEGIN; INSERT INTO t VALUES (5); $kill; COMMIT");
is_deeply($c->trace(10),
	[ 'C:BEGIN', 'C:INSERT 0 1', 'T', 'D:t', 'C:SELECT 1', @$KILLED ],
	'explicit block in one string: its COMMIT never runs');
is(table_rows('t'), '', 'explicit block in one string: nothing committed');

($c, $id, $kill) = session();
$c->query('BEGIN');
$c->query('INSERT INTO t VALUES (6)');
$c->send_query($kill);
$c->send_query('COMMIT');
is_deeply($c->trace(10), [ 'T', 'D:t', 'C:SELECT 1', @$KILLED ],
	'explicit block with a queued COMMIT: FATAL after the kill');
is(table_rows('t'), '', 'explicit block with a queued COMMIT: nothing committed');

# A rule's action is part of the statement: the statement completes.
($c, $id, $kill) = session();
$c->send_query("INSERT INTO r SELECT 7 WHERE kill_session('$id')");
is_deeply($c->trace(10), [ 'C:INSERT 0 1', @$KILLED ],
	'DO ALSO rule: the statement completes, then FATAL');
is(table_rows('r') . '/' . table_rows('t'), '7/7',
	"DO ALSO rule: the statement and its rule's action committed");
reset_tables();

# The statement fails after the kill: the session ends once the error has
# been reported.
($c, $id, $kill) = session();
$c->send_query("DO \$\$ BEGIN PERFORM kill_session('$id'); RAISE EXCEPTION 'after the kill'; END \$\$");
$c->send_query('INSERT INTO t VALUES (8)');
is_deeply($c->trace(10), [ 'E:ERROR:P0001', @$KILLED ],
	'statement failing after the kill: its error, then FATAL');
is(table_rows('t'), '', 'statement failing after the kill: the next one never ran');

# A slow reader gets every row and the completion before the FATAL; while
# the backend waits for it, it does not wake up.
($c, $id, $kill) = session();
$c->send_query("SELECT g, repeat('x', 2000) FROM generate_series(1, 4000) g, ($kill) k");
my $pid = $c->pid;
usleep(500_000);
my $ctx = sub {
	my $status = slurp_file("/proc/$pid/status");
	my ($v) = $status =~ /^voluntary_ctxt_switches:\s*(\d+)/m;
	my ($n) = $status =~ /^nonvoluntary_ctxt_switches:\s*(\d+)/m;
	return $v + $n;
};
my $before = $ctx->();
sleep 2;
my $woken = $ctx->() - $before;
cmp_ok($woken, '<=', 3,
	"a self-killed backend blocked on its client does not wake up ($woken context switches in 2 s)");
my $trace = $c->trace(30);
my $rows = grep { /^D:/ } @$trace;
is($rows, 4000, 'slow reader: every row arrived');
is_deeply([ @$trace[ -3 .. -1 ] ], [ 'C:SELECT 4000', @$KILLED ],
	'slow reader: the completion, then FATAL');

# -- Extended protocol ----------------------------------------------------

# A pipeline: statements after the kill never run, and its Sync commits
# nothing.
($c, $id, $kill) = session();
$c->parse('', 'INSERT INTO t VALUES (10)');
$c->bind('', '');
$c->execute('');
$c->parse('', $kill);
$c->bind('', '');
$c->execute('');
$c->parse('', 'INSERT INTO t VALUES (11)');
$c->bind('', '');
$c->execute('');
$c->sync;
is_deeply($c->trace(10),
	[ '1', '2', 'C:INSERT 0 1', '1', '2', 'D:t', 'C:SELECT 1', @$KILLED ],
	'pipeline: FATAL right after the kill, no ReadyForQuery');
is(table_rows('t'), '', 'pipeline: its Sync committed nothing');

# A portal bound before the kill and executed after it never runs.
($c, $id, $kill) = session();
$c->parse('ins', 'INSERT INTO t VALUES (12)');
$c->bind('early', 'ins');
$c->parse('', $kill);
$c->bind('', '');
$c->execute('');
$c->execute('early');
$c->sync;
is_deeply($c->trace(10), [ '1', '2', '1', '2', 'D:t', 'C:SELECT 1', @$KILLED ],
	'portal bound before the kill: never executed');
is(table_rows('t'), '', 'portal bound before the kill: nothing committed');

# No Sync at all: the session still ends at once.
($c, $id, $kill) = session();
$pid = $c->pid;
$c->parse('', $kill);
$c->bind('', '');
$c->execute('');
$c->flush;
is_deeply($c->trace(10), [ '1', '2', 'D:t', 'C:SELECT 1', @$KILLED ],
	'no Sync: FATAL right after the result');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'no Sync: the backend is gone');

# A row limit reached: the rows asked for, then the end.
($c, $id, $kill) = session();
$c->parse('', "SELECT g FROM generate_series(1, 3) g, ($kill) k");
$c->bind('', '');
$c->execute('', 2);
$c->execute('', 2);
$c->sync;
is_deeply($c->trace(10), [ '1', '2', 'D:1', 'D:2', 's', @$KILLED ],
	'row limit: the rows asked for, PortalSuspended, then FATAL');

# A fastpath call after the kill never runs (lo_creat would create a large
# object).
my $lo_creat = $node->safe_psql('postgres', "SELECT 'lo_creat'::regproc::oid");
($c, $id, $kill) = session();
$c->parse('', $kill);
$c->bind('', '');
$c->execute('');
$c->function_call($lo_creat, '-1');
$c->sync;
is_deeply($c->trace(10), [ '1', '2', 'D:t', 'C:SELECT 1', @$KILLED ],
	'fastpath call after the kill: never answered');
is($node->safe_psql('postgres', 'SELECT count(*) FROM pg_largeobject_metadata'),
	'0', 'fastpath call after the kill: no large object created');

# The kill itself as a fastpath call: its answer, then FATAL.
my $kill_oid = $node->safe_psql('postgres',
	"SELECT 'kill_session(text, boolean, text)'::regprocedure::oid");
($c, $id, $kill) = session();
$c->function_call($kill_oid, $id, 'f', 'fastpath');
$c->send_query('INSERT INTO t VALUES (13)');
is_deeply($c->trace(10), [ 'V:t', @$KILLED ], 'fastpath kill: its answer, then FATAL');
is(table_rows('t'), '', 'fastpath kill: the statement queued behind it never ran');

# -- Drivers -------------------------------------------------------------

SKIP:
{
	my $missing = ks_driver_missing('psycopg 3');
	skip $missing, 1 if $missing;
	my ($stdout, $stderr);
	IPC::Run::run([ '/usr/bin/python3', 't/psycopg_self_kill.py',
			$node->connstr('postgres') . ' user=dba' ],
		'>', \$stdout, '2>', \$stderr);
	like($stdout,
		qr/^OperationalError: .*terminating connection due to administrator command \/ DETAIL:  Session \d+ was killed by itself\.\nclosed$/,
		'psycopg 3: the call raises the FATAL, with its DETAIL in the text')
	  or diag $stderr;
}

# -- pgbouncer -----------------------------------------------------------

SKIP:
{
	skip 'pgbouncer is not installed', 4 unless -x '/usr/sbin/pgbouncer';

	for my $mode ('transaction', 'session')
	{
		my $bouncer = ks_pgbouncer($node, $mode, 'dba');
		my $port = $bouncer->{port};

		my $runs = 20;
		my ($a_ok, $b_ok) = (0, 0);
		for my $i (1 .. $runs)
		{
			# A kills the server session it runs on; B's statement waits
			# for that one server connection meanwhile.
			my $a = KsWire->connect($node, user => 'dba', tcp => 1, port => $port);
			$a->send_query(
				"SELECT pg_sleep(0.2), kill_session((SELECT id::text FROM processlist WHERE pid = pg_backend_pid())) IS TRUE");
			my $b;
			if ($mode eq 'transaction')
			{
				$b = KsWire->connect($node, user => 'dba', tcp => 1, port => $port);
				$b->send_query("SELECT 'B ran'");
			}
			my $ta = $a->trace(10);
			$a_ok++
			  if join(' ', @$ta) =~ /^T D:,t C:SELECT 1 E:FATAL:57P01/;
			if ($b)
			{
				my $tb = $b->trace(10);
				$b_ok++ if join(' ', @$tb) eq "T D:B ran C:SELECT 1 Z";
				$b->close;
			}
			$a->close;
		}
		is($a_ok, $runs,
			"pgbouncer, $mode pooling: the killer got its result, then 57P01, $runs of $runs times");
		if ($mode eq 'transaction')
		{
			is($b_ok, $runs,
				"pgbouncer, transaction pooling: the queued client's statement ran normally, $runs of $runs times");
		}
		else
		{
			my $c2 = KsWire->connect($node, user => 'dba', tcp => 1, port => $port);
			is($c2->value("SELECT 'next client'"), 'next client',
				'pgbouncer, session pooling: the next client is served');
			$c2->close;
		}
		$bouncer->{stop}->();
	}
}

ok(!$node->log_contains(qr/PANIC|TRAP|terminated by signal/),
	'no crash, no failed assertion');
$node->stop;
done_testing();
