# Shared set-up for the kill_session TAP tests.

package KsNode;

use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET;
use IPC::Run;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use KsWire;

our @EXPORT = qw(ks_node ks_cluster ks_registry_query ks_pgbouncer ks_slow
  ks_victim ks_run_as ks_driver_missing);

# How many times longer than usual things take: ten under Valgrind
# (tools/suites.sh sets KS_VALGRIND), where every server process runs tens
# of times slower.  Bounds on "at once" are multiplied by it.
sub ks_slow { return $ENV{KS_VALGRIND} ? 10 : 1; }

# A started node with kill_session preloaded and created in "postgres";
# $conf is appended to postgresql.conf.
sub ks_node
{
	my ($name, $conf) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf',
		"shared_preload_libraries = 'kill_session'\n" . ($conf // ''));
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION kill_session');
	return $node;
}

# A streaming cluster of three nodes: a primary (kill_session.node_id 1)
# and two hot standbys (2 and 3), each listening on 127.0.0.1 too.  On the
# primary, replicated to the standbys: postgres_fdw, a foreign server
# nodeN for each node, the directory kill_session_nodes, and user mappings
# for the superuser (no password) and for the roles app and dba (their
# passwords, which TCP connections of theirs must give).  Returns the
# three nodes in order.
sub ks_cluster
{
	my $primary = PostgreSQL::Test::Cluster->new('node1');
	$primary->init(allows_streaming => 1);
	$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'kill_session'
listen_addresses = '127.0.0.1'
kill_session.node_id = 1
} . ($ENV{KS_VALGRIND} ? "kill_session.node_timeout = 60s\n" : ''));
	my $hba = slurp_file($primary->data_dir . '/pg_hba.conf');
	open(my $fh, '>', $primary->data_dir . '/pg_hba.conf') or die;
	print $fh "host all app,dba,nopw 127.0.0.1/32 scram-sha-256\n$hba";
	close $fh;
	$primary->start;
	$primary->safe_psql('postgres', q{
		CREATE EXTENSION kill_session;
		CREATE EXTENSION postgres_fdw;
		CREATE ROLE app LOGIN PASSWORD 'app-secret';
		CREATE ROLE dba LOGIN PASSWORD 'dba-secret';
		CREATE ROLE nopw LOGIN PASSWORD 'nopw-secret';
	});
	$primary->backup('streaming');
	my @nodes = ($primary);
	for my $n (2, 3)
	{
		my $standby = PostgreSQL::Test::Cluster->new("node$n");
		$standby->init_from_backup($primary, 'streaming', has_streaming => 1);
		$standby->append_conf('postgresql.conf', "kill_session.node_id = $n\n");
		$standby->start;
		push @nodes, $standby;
	}
	for my $n (1 .. 3)
	{
		my $port = $nodes[ $n - 1 ]->port;
		$primary->safe_psql('postgres', qq{
			CREATE SERVER node$n FOREIGN DATA WRAPPER postgres_fdw
				OPTIONS (host '127.0.0.1', port '$port', dbname 'postgres');
			CREATE USER MAPPING FOR CURRENT_USER SERVER node$n;
			CREATE USER MAPPING FOR app SERVER node$n
				OPTIONS (user 'app', password 'app-secret');
			CREATE USER MAPPING FOR dba SERVER node$n
				OPTIONS (user 'dba', password 'dba-secret');
			CREATE USER MAPPING FOR nopw SERVER node$n OPTIONS (user 'nopw');
			GRANT USAGE ON FOREIGN SERVER node$n TO app, dba, nopw;
			INSERT INTO kill_session_nodes VALUES ($n, 'node$n');
		});
	}
	$primary->wait_for_catchup($_, 'replay', $primary->lsn('insert'))
	  for @nodes[ 1, 2 ];
	return @nodes;
}

# The client drivers the tests run, and how each is found: a command that
# succeeds only where the driver can be loaded.  Node.js finds its
# packages through NODE_PATH (KS_NODE_PATH, where tools/test.sh installs
# them from npm) or its own global paths.
my %ks_drivers = (
	'psycopg 3' => [ '/usr/bin/python3', '-c', 'import psycopg' ],
	'psycopg2' => [ '/usr/bin/python3', '-c', 'import psycopg2' ],
	'pgJDBC' => [ 'sh', '-c', 'command -v java >/dev/null && test -r /usr/share/java/postgresql.jar' ],
	'node-postgres' => [ 'node', '-e', 'require("pg")' ],
	'postgres.js' => [ 'node', '-e', 'require("postgres")' ]);

# Why $driver cannot run here, or undef if it can.  A test skips what needs
# a missing driver, as PostgreSQL's own tests skip what PG_TEST_EXTRA does
# not enable; with KS_REQUIRE_DRIVERS set (tools/test.sh sets it), a
# missing driver is a failed test instead, so such a run has run them all.
sub ks_driver_missing
{
	my ($driver) = @_;
	local $ENV{NODE_PATH} = $ENV{KS_NODE_PATH} if $ENV{KS_NODE_PATH};
	my $check = $ks_drivers{$driver} or die "unknown driver $driver";
	my ($out, $err);
	return undef if eval { IPC::Run::run($check, '>', \$out, '2>', \$err) };
	my $why = "$driver is not installed here (see README, Development)";
	fail("$driver is required (KS_REQUIRE_DRIVERS) but $why")
	  if $ENV{KS_REQUIRE_DRIVERS};
	return $why;
}

# A session of role app on $node over the wire (KsWire), and its ID.
sub ks_victim
{
	my ($node) = @_;
	my $w = KsWire->connect($node, user => 'app');
	return ($w, $w->session_id);
}

# psql's stdout and stderr for $sql in database postgres of $node as
# $user, verbose and with every CONTEXT.
sub ks_run_as
{
	my ($node, $user, $sql) = @_;
	my ($ret, $out, $err) = $node->psql('postgres',
		"\\set VERBOSITY verbose\n\\set SHOW_CONTEXT always\n$sql",
		extra_params => [ '-U', $user ]);
	return ($out, $err);
}

# True ('t') when the registry lists exactly the client backends that
# pg_stat_activity lists.
sub ks_registry_query
{
	return q{
		SELECT count(*) = 0
		FROM processlist p
		FULL JOIN (SELECT * FROM pg_stat_activity
		           WHERE backend_type = 'client backend') a USING (pid)
		WHERE p.pid IS NULL OR a.pid IS NULL};
}

# pgbouncer in front of $node's database "postgres", on a free port of
# 127.0.0.1, pool size 1, trusting @users: { port, stop => sub }.
sub ks_pgbouncer
{
	my ($node, $mode, @users) = @_;
	my $dir = $node->basedir . "/pgbouncer_$mode";
	mkdir $dir;
	my $port = PostgreSQL::Test::Cluster::get_free_port();
	open(my $fh, '>', "$dir/pgbouncer.ini") or die;
	print $fh <<"EOF";
[databases]
postgres = host=${\ $node->host} port=${\ $node->port} dbname=postgres
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/users.txt
pool_mode = $mode
default_pool_size = 1
max_client_conn = 20
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
	close $fh;
	open($fh, '>', "$dir/users.txt") or die;
	print $fh qq{"$_" ""\n} for @users;
	close $fh;
	system('/usr/sbin/pgbouncer', '-d', "$dir/pgbouncer.ini") == 0
	  or die "pgbouncer did not start";
	# Wait until it listens.
	for (1 .. 100)
	{
		my $up = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
			PeerPort => $port, Proto => 'tcp');
		if ($up) { close $up; last; }
		usleep(50_000);
	}
	return {
		port => $port,
		stop => sub {
			my $pid = slurp_file("$dir/pgbouncer.pid");
			chomp $pid;
			kill 'TERM', $pid;
		} };
}

1;
