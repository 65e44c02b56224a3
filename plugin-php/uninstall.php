<?php
/**
 * Removes the plugin's options and cached health check. Orders and their meta are left alone,
 * and so is the bridge's WooCommerce key: the bridge may still be using it (revoke it first,
 * or under WooCommerce > Settings > Advanced > REST API).
 *
 * @package Cryptum_Bridge
 */

defined( 'WP_UNINSTALL_PLUGIN' ) || exit;

foreach ( array( 'cryptum_bridge_url', 'cryptum_bridge_mode', 'cryptum_bridge_public_url', 'cryptum_bridge_network', 'cryptum_bridge_api_key' ) as $cryptum_bridge_option ) {
	delete_option( $cryptum_bridge_option );
}
delete_transient( 'cryptum_bridge_health' );
