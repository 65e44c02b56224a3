<?php
/**
 * Removes the plugin's options and cached health check. Orders and their meta are left alone.
 *
 * @package Cryptum_Bridge
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

foreach ( array( 'cryptum_bridge_url', 'cryptum_bridge_mode', 'cryptum_bridge_public_url', 'cryptum_bridge_network' ) as $cryptum_bridge_option ) {
	delete_option( $cryptum_bridge_option );
}
delete_transient( 'cryptum_bridge_health' );
