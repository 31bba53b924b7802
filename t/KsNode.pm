# Shared set-up for the kill_session TAP tests.

package KsNode;

use strict;
use warnings;
use Exporter 'import';
use IO::Socket::INET;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep);

our @EXPORT = qw(ks_node ks_registry_query ks_pgbouncer ks_slow);

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
