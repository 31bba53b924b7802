# The 1.1 statements over the protocol: disconnect_session() (its end after
# the transaction is in 011_disconnect.pl), cancel_sql(), kill_sessions();
# the upgrade from 1.0 on a live
# server; and a dump and restore of a database with the extension and its
# grants.

use strict;
use warnings FATAL => 'all';
use lib 't';
use KsNode;
use KsWire;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

my $node = ks_node('main', "max_connections = 300\n");
$node->safe_psql('postgres', q{
	CREATE TABLE t (a int);
	GRANT ALL ON t TO PUBLIC;
	CREATE ROLE app LOGIN;
	CREATE ROLE dba LOGIN;
	CREATE ROLE nopriv LOGIN;
	GRANT ALTER SYSTEM TO dba;
	GRANT pg_read_all_stats TO dba;
});
my $dba = KsWire->connect($node, user => 'dba');
my $dba_id = $dba->session_id;

sub rows_in_t { return $node->safe_psql('postgres', 'SELECT count(*) FROM t'); }

# -- disconnect_session() ---------------------------------------------------

# After the transaction (post_transaction => true): t/011_disconnect.pl.
my ($app, $app_id);
my $t0;

# IMMEDIATE, or neither: a kill.
$app = KsWire->connect($node, user => 'app');
$app_id = $app->session_id;
$app->query('BEGIN');
$app->query('INSERT INTO t VALUES (5)');
is($dba->value("SELECT disconnect_session('$app_id', immediate => true)"), 't',
	'IMMEDIATE kills');
is_deeply($app->trace(10), [ 'E:FATAL:57P01', 'EOF' ], 'IMMEDIATE: the session ends now');
is(rows_in_t(), '0', 'IMMEDIATE: its transaction rolled back');

my $r = $dba->query("SELECT disconnect_session('1', true, true)");
is($r->{error}{C}, '22023', 'POST_TRANSACTION with IMMEDIATE: 22023');
$r = $dba->query("SELECT disconnect_session('4294967295', post_transaction => true)");
is($r->{error}{C}, '42704', 'disconnect of no session: 42704');
my $nopriv = KsWire->connect($node, user => 'nopriv');
$r = $nopriv->query("SELECT disconnect_session('$dba_id', post_transaction => true)");
is($r->{error}{C}, '42501', 'disconnect without the privilege: 42501');

# -- cancel_sql() -----------------------------------------------------------

$app = KsWire->connect($node, user => 'app');
$app_id = $app->session_id;
$app->send_query('SELECT pg_sleep(60)');
$node->poll_query_until('postgres',
	"SELECT state = 'active' FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)'");
$t0 = time();
is($dba->value("SELECT cancel_sql('$app_id')"), 't', 'cancel_sql of a running statement: true');
my $elapsed = time() - $t0;
is($dba->value(
		"SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(60)'"),
	'0', 'the statement has stopped when cancel_sql returns');
cmp_ok($elapsed, '<', 5 * ks_slow(), 'and it returns at once');
$r = $app->read_result(10);
is($r->{error}{C}, '57014', 'the target gets 57014');
is($r->{error}{D},
	qq{The statement of session $app_id was cancelled by role "dba" (session $dba_id).},
	'with a DETAIL naming who cancelled it');
is($app->value('SELECT 42'), '42', 'and keeps its session');
$r = $dba->query("SELECT cancel_sql('$app_id')");
is_deeply($r->{rows}, [ ['f'] ], 'cancel_sql of an idle session: false');
is($r->{notices}[0]{M}, "session $app_id is not running a statement", 'with a NOTICE');
$app->send_query('SELECT pg_sleep(0.2)');
$app->read_result(10);
$r = $app->query('SELECT 1/0');
is($r->{error}{D}, undef, 'a later error of the target has no stale DETAIL');
$r = $nopriv->query("SELECT cancel_sql('$app_id')");
is($r->{error}{C}, '42501', 'cancel_sql without the privilege: 42501');
$r = $dba->query("SELECT cancel_sql('x')");
is($r->{error}{C}, '22023', 'cancel_sql of a malformed ID: 22023');
ok($node->log_contains(qr/session $app_id \(pid \d+, role "app", database "postgres"\) had its statement cancelled by session $dba_id/),
	'the cancel is logged');
$app->close;

# -- kill_sessions() --------------------------------------------------------

my @apps = map { KsWire->connect($node, user => 'app') } 1 .. 20;
my @ids = map { $_->session_id } @apps;
$apps[0]->send_query('SELECT pg_sleep(60)');
my $list = join(',', @ids, 4294967295);
$r = $dba->query("SELECT id, killed FROM kill_sessions(ARRAY[$list]) ORDER BY id");
is(scalar(grep { $_->[1] eq 't' } @{ $r->{rows} }), 20, 'kill_sessions: all 20 killed');
is_deeply([ grep { $_->[0] eq '4294967295' } @{ $r->{rows} } ], [ [ '4294967295', 'f' ] ],
	'a session that does not exist: false');
is($r->{notices}[0]{M}, 'session ID 4294967295 does not exist', 'with a NOTICE');
is($dba->value(q{SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'}), '0',
	'every process is gone when it returns');
is(scalar(grep { grep { $_ eq 'E:FATAL:57P01' } @{ $_->trace(10) } } @apps), 20,
	'every client got 57P01');
my $su = KsWire->connect($node);
my $su_id = $su->session_id;
my $app2 = KsWire->connect($node, user => 'app');
my $app2_id = $app2->session_id;
$r = $dba->query("SELECT * FROM kill_sessions(ARRAY[$app2_id, $su_id])");
is($r->{error}{C}, '42501', "kill_sessions with a superuser's session: 42501");
is($app2->value('SELECT 1'), '1', 'and nothing was killed');
$r = $dba->query("SELECT * FROM kill_sessions(ARRAY[$app2_id, NULL])");
is($r->{error}{C}, '22023', 'kill_sessions with a NULL ID: 22023');
$r = $dba->query("SELECT * FROM kill_sessions(ARRAY[0])");
is($r->{error}{C}, '22023', 'kill_sessions with ID 0: 22023');

# A kill_sessions() waiting for a session that cannot end is cancelled at
# once, and leaves no descriptor open.
my $stopped = KsWire->connect($node, user => 'app');
my $stopped_id = $stopped->session_id;
kill 'STOP', $stopped->pid;
my $dba_pid = $dba->pid;
opendir(my $fd_dir, "/proc/$dba_pid/fd") or die;
my $fds_before = scalar grep { !/^\./ } readdir $fd_dir;
$t0 = time();
$r = $dba->query("SET statement_timeout = '300ms'; SELECT * FROM kill_sessions(ARRAY[$stopped_id])");
$elapsed = time() - $t0;
is($r->{error}{C}, '57014', 'kill_sessions waiting on a stopped session: cancelled by statement_timeout');
cmp_ok($elapsed, '<', 2 * ks_slow(), 'at once, not at the end of wait_timeout');
$dba->query('RESET statement_timeout');
rewinddir $fd_dir;
is(scalar(grep { !/^\./ } readdir $fd_dir), $fds_before, 'no descriptor left open');
kill 'CONT', $stopped->pid;
is_deeply($stopped->trace(10), [ 'E:FATAL:57P01', 'EOF' ], 'the session ends once it can');

# -- Upgrade from 1.0 on a live server; dump and restore ---------------------

$node->safe_psql('postgres', 'CREATE DATABASE up');
$node->safe_psql('up', "CREATE EXTENSION kill_session VERSION '1.0'");
my $watcher = KsWire->connect($node, dbname => 'up');
is($watcher->value('SELECT count(*) > 0 FROM processlist'), 't', '1.0 lists sessions');
$node->safe_psql('up', 'ALTER EXTENSION kill_session UPDATE');
is($node->safe_psql('up', "SELECT extversion FROM pg_extension WHERE extname = 'kill_session'"),
	'1.6', 'ALTER EXTENSION kill_session UPDATE: 1.6, through 1.1, 1.2, 1.3, 1.4 and 1.5');
my $victim = KsWire->connect($node, dbname => 'up', user => 'app');
my $victim_id = $victim->session_id;
is($watcher->value("SELECT killed FROM kill_sessions(ARRAY[$victim_id])"), 't',
	'the upgraded extension kills, in the sessions that were already there');
is($watcher->value('SELECT count(*) > 0 FROM v$session WHERE sql_id IS NOT NULL'), 't',
	'and shows them in v$session, with the running statement\'s SQL_ID');
$watcher->close;

$node->safe_psql('up', q{
	CREATE TABLE kept (a int);
	INSERT INTO kept VALUES (1);
	GRANT EXECUTE ON FUNCTION cancel_sql(text, text) TO app;
	INSERT INTO kill_session_nodes VALUES (2, 'node2');
});
my $dumpfile = $node->basedir . '/up.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dumpfile, '-h', $node->host,
	'-p', $node->port, 'up' ], 'pg_dump of a database with the extension');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '-d', 'restored', '-h', $node->host,
	'-p', $node->port, $dumpfile ], 'pg_restore of it');
is($node->safe_psql('restored',
		"SELECT extversion FROM pg_extension WHERE extname = 'kill_session'"),
	'1.6', 'the restored extension is 1.6');
is($node->safe_psql('restored', 'SELECT node_id, server_name FROM kill_session_nodes'),
	'2|node2', 'with the directory of nodes (pg_extension_config_dump)');
is($node->safe_psql('restored',
		"SELECT has_function_privilege('app', 'cancel_sql(text, text)', 'EXECUTE')"),
	't', 'with its grants');
is($node->safe_psql('restored', 'SELECT count(*) > 0 FROM processlist'), 't',
	'and works');

ok(!$node->log_contains(qr/PANIC|TRAP|terminated by signal/), 'no crash');
$node->stop;
done_testing();
