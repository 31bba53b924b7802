# SHOW PROCESSLIST against what clients, poolers and DBAs do around it: a
# concurrent DROP EXTENSION, a statement prepared by the client at the
# protocol level (psycopg 3 with prepare=True), DEALLOCATE, DISCARD ALL and
# ALTER EXTENSION SET SCHEMA, and sessions that come and go inside a
# transaction.

use strict;
use warnings FATAL => 'all';
use lib 't';
use KsNode;
use KsWire;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = ks_node('main');

# -- A concurrent DROP EXTENSION never crashes the server ----------------

{
	my $observer = KsWire->connect($node);
	my @readers = map { KsWire->connect($node) } 1 .. 3;
	my $dropper = KsWire->connect($node);
	my %errors;
	my ($shows, $drops) = (0, 0);
	my $end = time() + ($ENV{KS_DROP_RACE_SECONDS} // 10);
	while (time() < $end)
	{
		$_->send_query('SHOW PROCESSLIST') for @readers;
		$dropper->send_query(
			$drops % 2 ? 'CREATE EXTENSION kill_session' : 'DROP EXTENSION kill_session');
		for my $r (@readers)
		{
			my $res = $r->read_result(30);
			die 'a reader lost its connection' if $res->{eof};
			$errors{ $res->{error}{C} }++ if $res->{error};
			$shows++;
		}
		my $res = $dropper->read_result(30);
		die "DROP/CREATE EXTENSION failed: $res->{error}{M}" if $res->{error};
		$drops++;
	}
	note "$shows SHOW PROCESSLIST against $drops DROP/CREATE EXTENSION; errors: "
	  . join(', ', map { "$_: $errors{$_}" } sort keys %errors);
	is_deeply([ grep { $_ ne '55000' } keys %errors ], [],
		'SHOW PROCESSLIST racing DROP EXTENSION: only the "needs the extension" error');
	ok($errors{'55000'}, 'the race was run: some SHOW PROCESSLIST found the extension gone');
	$dropper->query('CREATE EXTENSION IF NOT EXISTS kill_session');
	is($observer->value('SELECT 1'), '1',
		'an idle observer connection is still alive: no crash restart');
	ok(!$node->log_contains(qr/terminated by signal|TRAP|PANIC/),
		'no server process was terminated by a signal');
	$_->close for (@readers, $dropper, $observer);
}

# -- A statement the client prepared ------------------------------------

# Bind, describe and execute the client's statement "ps": its rows, with
# the eight columns described.
sub run_prepared
{
	my ($c, $stmt) = @_;
	$c->bind('', $stmt);
	$c->describe_portal('');
	$c->execute('');
	$c->sync;
	my $trace = $c->trace(10);
	my $rows = grep { /^D:/ } @$trace;
	# Other sessions may come and go: what counts is that rows come back,
	# described, as many as the completion says.
	my $tag = join(' ', grep { !/^D:/ } @$trace);
	$tag =~ s/C:SELECT $rows\b/C:SELECT n/;
	return $tag . ($rows > 0 ? ' rows' : ' no rows');
}

my $c = KsWire->connect($node);
$c->parse('ps', 'SHOW PROCESSLIST');
$c->sync;
is_deeply($c->trace(10), [ '1', 'Z' ], 'the client prepares SHOW PROCESSLIST');
is(run_prepared($c, 'ps'), '2 T C:SELECT n Z rows', 'and runs it');

$c->query('DEALLOCATE kill_session_show_processlist');
is(run_prepared($c, 'ps'), '2 T C:SELECT n Z rows',
	'after DEALLOCATE of the statement behind it');

$c->query('DEALLOCATE ALL');
$c->parse('ps', 'SHOW PROCESSLIST');
$c->sync;
$c->trace(10);
is(run_prepared($c, 'ps'), '2 T C:SELECT n Z rows',
	'after DEALLOCATE ALL, prepared again as a driver does');

$c->query('DISCARD ALL');
$c->parse('ps', 'SHOW PROCESSLIST');
$c->sync;
$c->trace(10);
is(run_prepared($c, 'ps'), '2 T C:SELECT n Z rows', 'after DISCARD ALL');

# Another session moves the extension: this one's statements follow it.
$node->safe_psql('postgres',
	'CREATE SCHEMA ks; ALTER EXTENSION kill_session SET SCHEMA ks');
is(run_prepared($c, 'ps'), '2 T C:SELECT n Z rows',
	'after ALTER EXTENSION SET SCHEMA in another session');
$node->safe_psql('postgres', 'ALTER EXTENSION kill_session SET SCHEMA public');
is(run_prepared($c, 'ps'), '2 T C:SELECT n Z rows', 'and back');
$c->close;

# A statement of the client's that has the name is never replaced, nor run
# in SHOW PROCESSLIST's place.
$c = KsWire->connect($node);
$c->parse('kill_session_show_processlist', "SELECT 'mine'");
$c->sync;
$c->trace(10);
my $r = $c->query('SHOW PROCESSLIST');
is($r->{error}{C}, '42P05', "SHOW PROCESSLIST refuses to run the client's statement of its name");
is(run_prepared($c, 'kill_session_show_processlist'), '2 T C:SELECT n Z rows',
	"the client's statement is still its own");
$c->bind('', 'kill_session_show_processlist');
$c->execute('');
$c->sync;
is_deeply($c->trace(10), [ '2', 'D:mine', 'C:SELECT 1', 'Z' ],
	"and still answers 'mine'");
$c->close;

# psycopg 3 prepares SHOW PROCESSLIST at the protocol level after a few
# runs (prepare=True: at once).
SKIP:
{
	my $missing = ks_driver_missing('psycopg 3');
	skip $missing, 1 if $missing;
	my ($stdout, $stderr);
	my $ok = IPC::Run::run(
		[ '/usr/bin/python3', 't/psycopg_show_processlist.py', $node->connstr('postgres') ],
		'>', \$stdout, '2>', \$stderr);
	is($stdout, "ok ok ok ok\n",
		'psycopg 3, prepare=True: SHOW PROCESSLIST after DEALLOCATE and SET SCHEMA both ways')
	  or diag $stderr;
}

# -- Fresh inside a transaction ------------------------------------------

$c = KsWire->connect($node);
$c->query('BEGIN');
is($c->value('SELECT count(*) FROM processlist'), '1', 'one session listed');
my $late = KsWire->connect($node, nowait => 1);
$late->wait_ready;
my $late_id = $late->value('SELECT id FROM processlist WHERE pid = pg_backend_pid()');
$late->send_query('SELECT pg_sleep(60)');
$node->poll_query_until('postgres',
	"SELECT state = 'active' FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'");
is($c->value("SELECT command || ' ' || state || ' ' || info FROM processlist WHERE id = $late_id"),
	'Query ACTIVE SELECT pg_sleep(60)',
	'a session that connected after the transaction began is listed as it is now');
$c->query('COMMIT');
$late->close;
$c->close;

$node->stop;
done_testing();
