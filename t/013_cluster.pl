# One session ID space across a streaming cluster: a primary (node 1) and
# two hot standbys (nodes 2 and 3), with the directory of nodes defined on
# the primary.  Every statement reaches a session of any node from any
# node; a stopped or hanging node fails clearly within
# kill_session.node_timeout; a directory entry that names the wrong server
# is refused; IDs never collide.

use strict;
use warnings FATAL => 'all';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);
use FindBin;
use lib $FindBin::RealBin;
use KsNode;
use KsWire;

my @nodes = ks_cluster();
my ($n1, $n2, $n3) = @nodes;
my $END = [ 'E:FATAL:57P01', 'EOF' ];

sub refused { return (ks_run_as(@_))[1]; }

# -- Node identity -------------------------------------------------------------

for my $i (0 .. 2)
{
	my ($w, $id) = ks_victim($nodes[$i]);
	is(int($id / 10_000_000_000), $i + 1,
		'node ' . ($i + 1) . " hands out IDs that carry it: $id");
	$w->close;
}
like(refused($n2, 'postgres', 'SELECT kill_session(\'4294967295\')'),
	qr/ERROR:  22023: session ID 4294967295 carries no node/,
	'on a node, an ID without a node is refused: it could be any node\'s');

# -- Forwarded calls, from every node to every other ------------------------

my ($v, $id) = ks_victim($n2);
is($n1->safe_psql('postgres', "SELECT kill_session('$id')"), 't',
	'the primary kills a session of standby 2');
is_deeply($v->trace(10), $END, 'which ends');

($v, $id) = ks_victim($n1);
is($n2->safe_psql('postgres', "SELECT kill_session('$id, 7', immediate => true)"),
	't', 'standby 2 kills a session of the primary');
is_deeply($v->trace(10), $END, 'which ends');

($v, $id) = ks_victim($n3);
is($n2->safe_psql('postgres', "SELECT kill_session('$id')"), 't',
	'standby 2 kills a session of standby 3');
is_deeply($v->trace(10), $END, 'which ends');

($v, $id) = ks_victim($n1);
my $local = $id % 10_000_000_000;
is($n3->safe_psql('postgres', "SELECT kill_session('$local, 1, \@1')"), 't',
	"Oracle RAC's form from standby 3: '$local, 1, \@1'");
is_deeply($v->trace(10), $END, 'which ends');
like(refused($n3, 'postgres', "SELECT kill_session('$id, 1, \@2')"),
	qr/ERROR:  22023: session ID $id is not on node 2/,
	'an @N that is not the ID\'s node is refused');

# disconnect_session(post_transaction): the session ends after its commit.
($v, $id) = ks_victim($n3);
$v->query('BEGIN');
$v->query('SELECT 1');
is($n1->safe_psql('postgres',
		"SELECT disconnect_session('$id', post_transaction => true)"),
	't', 'the primary marks a session of standby 3 to disconnect after its transaction');
is($v->value('SELECT 2'), '2', 'its transaction goes on');
$v->send_query('COMMIT');
is_deeply($v->trace(10, through_z => 1), [ 'C:COMMIT', 'Z', @$END ],
	'and the session ends right after its COMMIT');
($v, $id) = ks_victim($n1);
is($n3->safe_psql('postgres', "SELECT disconnect_session('$id')"), 't',
	'standby 3 disconnects a session of the primary at once');
is_deeply($v->trace(10), $END, 'which ends');

# cancel_sql: the statement stops, the session stays.
($v, $id) = ks_victim($n2);
$v->send_query('SELECT pg_sleep(60)');
$n2->poll_query_until('postgres',
	"SELECT state = 'ACTIVE' FROM processlist WHERE id = $id") or die;
is($n3->safe_psql('postgres', "SELECT cancel_sql('$id')"), 't',
	'standby 3 cancels the statement of a session of standby 2');
is_deeply($v->trace(10), [ 'T', 'E:ERROR:57014', 'Z' ], 'the statement is cancelled');
is($v->value('SELECT 3'), '3', 'and the session goes on');
my ($ret, $out, $err) = $n1->psql('postgres',
	"\\set SHOW_CONTEXT always\nSELECT cancel_sql('$id')");
is($out, 'f', 'a session of another node running no statement: false');
like($err, qr/NOTICE:  session $id is not running a statement\nCONTEXT:  node 2 \(foreign server "node2"\)/,
	'with the node\'s NOTICE, naming the node');
$v->close;

# kill_sessions over IDs of all three nodes, from standby 2.
my (@v, @ids);
for my $node (@nodes)
{
	my ($w, $i) = ks_victim($node);
	push @v, $w;
	push @ids, $i;
}
my $missing = 30_000_000_000 + 1;
$missing++ while grep { $_ == $missing } @ids;
($ret, $out, $err) = $n2->psql('postgres',
	"\\set SHOW_CONTEXT always\nSELECT id, killed FROM kill_sessions(ARRAY["
	  . join(',', @ids, $missing) . '])');
is($out, join("\n", (map { "$_|t" } @ids), "$missing|f"),
	'kill_sessions from standby 2 kills the sessions of all three nodes');
like($err, qr/NOTICE:  session ID $missing does not exist\nCONTEXT:  node 3/,
	'an ID that is not there: its node says so');
is_deeply($_->trace(10), $END, 'a listed session ends') for @v;

# (The privilege on both nodes, and every trust boundary: t/015_trust.pl.)

($v, $id) = ks_victim($n3);

# -- IDs never collide ------------------------------------------------------

my @all = ($v);
push @all, (ks_victim($_))[0] for @nodes, @nodes;
for my $node (@nodes)
{
	is($node->safe_psql('postgres', q{
		SELECT count(*) = count(DISTINCT id)
		   AND bool_and(id / 10000000000 = node)
		   AND count(DISTINCT node) = 3
		FROM cluster_processlist}),
		't', 'the cluster list on node ' . $node->name
		  . ': every node, IDs unique, each carrying its node');
}
is($n1->safe_psql('postgres', qq{
	SELECT "user", node FROM cluster_processlist WHERE id = $id}),
	"app|3", 'the cluster list shows a session of standby 3 on the primary');

# -- A directory entry that names the wrong server is refused ---------------

like(refused($n1, 'postgres', qq{
	BEGIN;
	UPDATE kill_session_nodes SET server_name = 'node2' WHERE node_id = 3;
	SELECT kill_session('$id');}),
	qr/ERROR:  55000: foreign server "node2" is not node 3 of this cluster\nDETAIL:  It is node 2 of the system/,
	'a directory entry naming another node\'s server is refused');
my $n3_port = $n3->port;
like(refused($n1, 'postgres', qq{
	BEGIN;
	CREATE FOREIGN DATA WRAPPER unchecked;
	CREATE SERVER loose FOREIGN DATA WRAPPER unchecked
		OPTIONS (host '127.0.0.1', port '$n3_port', dbname 'postgres');
	CREATE USER MAPPING FOR CURRENT_USER SERVER loose;
	UPDATE kill_session_nodes SET server_name = 'loose' WHERE node_id = 3;
	SELECT kill_session('$id');}),
	qr/ERROR:  HV00D: foreign server "loose" of node 3 has no option validator/,
	'a server whose wrapper checks no options is refused');
my $other = ks_node('other', "kill_session.node_id = 3\nlisten_addresses = '127.0.0.1'\n");
my $other_port = $other->port;
my $ow = KsWire->connect($other);
my $oid = $ow->session_id;
like(refused($n1, 'postgres', qq{
	BEGIN;
	CREATE SERVER other FOREIGN DATA WRAPPER postgres_fdw
		OPTIONS (host '127.0.0.1', port '$other_port', dbname 'postgres');
	CREATE USER MAPPING FOR CURRENT_USER SERVER other;
	UPDATE kill_session_nodes SET server_name = 'other' WHERE node_id = 3;
	SELECT kill_session('$oid');}),
	qr/ERROR:  55000: foreign server "other" is not node 3 of this cluster\nDETAIL:  It is node 3 of the system with identifier \d+; this server's system identifier is \d+/,
	'a node 3 of another system is refused');
is($ow->value('SELECT 5'), '5', 'and its session is not touched');
is($v->value('SELECT 5'), '5', 'nor the session the ID names in this cluster');
$ow->close;
$other->stop;

# -- gv$session: every node's sessions, each with its own blockers ----------

# A row lock on the primary, an advisory lock on standby 2: each node
# answers for its own lock graph, in IDs that carry the node.
$n1->safe_psql('postgres',
	'CREATE TABLE gv_t (id int PRIMARY KEY, v int); INSERT INTO gv_t VALUES (1, 0)');
my $h1 = KsWire->connect($n1);
my $h1id = $h1->session_id;
$h1->query('BEGIN');
$h1->query('UPDATE gv_t SET v = 1 WHERE id = 1');
my $w1 = KsWire->connect($n1);
my $w1id = $w1->session_id;
$w1->send_query('UPDATE gv_t SET v = 2 WHERE id = 1');
my $h2 = KsWire->connect($n2);
my $h2id = $h2->session_id;
$h2->query('SELECT pg_advisory_lock(42)');
my $w2 = KsWire->connect($n2);
my $w2id = $w2->session_id;
$w2->send_query('SELECT pg_advisory_lock(42)');
$n3->poll_query_until('postgres',
	"SELECT count(*) = 2 FROM gv\$session WHERE blocking_session_status = 'VALID'")
  or die 'the waiters did not show';
is( $n3->safe_psql(
		'postgres', q{SELECT inst_id, sid, blocking_session, blocking_sessions,
		final_blocking_session_status, final_blocking_session
		FROM gv$session WHERE blocking_session IS NOT NULL ORDER BY inst_id}),
	"1|$w1id|$h1id|{$h1id}|VALID|$h1id\n2|$w2id|$h2id|{$h2id}|VALID|$h2id",
	'gv$session on standby 3: the waiter of each node, blocked by its holder there');
is($n3->safe_psql('postgres', 'SELECT count(DISTINCT inst_id) FROM gv$session'),
	'3', 'and every node answers');
is( $n3->safe_psql(
		'postgres',
		"SELECT kill_session(final_blocking_session::text) FROM gv\$session WHERE sid = $w2id"),
	't',
	"the Oracle DBA's road: standby 3 kills the head of standby 2's chain");
is_deeply($h2->trace(10), $END, 'the holder ends');
is_deeply($w2->trace(10), [ 'T', 'D:', 'C:SELECT 1', 'Z' ], 'and its waiter gets the lock');
$h1->query('COMMIT');
is_deeply($w1->trace(10), [ 'C:UPDATE 1', 'Z' ], "the primary's waiter goes on as its holder commits");
$_->close for ($h1, $w1, $w2);

# -- A node that cannot be reached -----------------------------------------

# A node that hangs: its postmaster stopped, connections are never answered.
my $pm_pid = slurp_file($n3->data_dir . '/postmaster.pid') =~ /^(\d+)/ ? $1 : die;
kill 'STOP', $pm_pid;
my $t0 = time();
like(refused($n1, 'postgres', "SET kill_session.node_timeout = '1s'; SELECT kill_session('$id')"),
	qr/ERROR:  08001: could not reach node 3\nDETAIL:  It did not connect and say who it is within kill_session.node_timeout \(1000 ms\)/,
	'a hanging node: a clear error');
my $elapsed = time() - $t0;
cmp_ok($elapsed, '<', 1 + 3 * ks_slow(), "within the timeout (${elapsed}s)");
kill 'CONT', $pm_pid;

$n3->stop('immediate');
($ret, $out, $err) = $n1->psql('postgres',
	"\\set SHOW_CONTEXT always\n"
	  . 'SELECT node, count(*) > 0 FROM cluster_processlist GROUP BY node ORDER BY node');
is($out, "1|t\n2|t", 'a stopped node: the cluster list lists the others');
like($err, qr/WARNING:  could not connect to node 3\n(.*\n)*CONTEXT:  node 3 \(foreign server "node3"\)/,
	'with a WARNING naming it');
$t0 = time();
like(refused($n2, 'postgres', "SELECT kill_session('$id')"),
	qr/ERROR:  08001: could not connect to node 3/,
	'a kill of its session fails clearly');
$elapsed = time() - $t0;
cmp_ok($elapsed, '<', 3 * ks_slow(), "at once (${elapsed}s)");

$_->close for @all;
done_testing();
