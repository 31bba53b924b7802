# Shared set-up for the kill_session TAP tests.

package KsNode;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;

our @EXPORT = qw(ks_node ks_registry_query);

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

1;
