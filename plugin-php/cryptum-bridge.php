<?php
/**
 * Plugin Name:          Cryptum Bridge
 * Plugin URI:           https://github.com/cryptum-bridge/cryptum-bridge
 * Description:          Hands Cryptum Checkout payment callbacks to the cryptum-bridge daemon, which verifies, stores and delivers them, and shows a payment's transactions on the order screen.
 * Version:              0.1.0
 * Requires at least:    6.5
 * Requires PHP:         7.4
 * Requires Plugins:     woocommerce
 * WC requires at least: 8.2
 * WC tested up to:      11.0
 * Author:               cryptum-bridge contributors
 * License:              GPL-2.0-or-later
 * License URI:          https://www.gnu.org/licenses/gpl-2.0.html
 * Text Domain:          cryptum-bridge
 *
 * @package Cryptum_Bridge
 */

defined( 'ABSPATH' ) || exit;

define( 'CRYPTUM_BRIDGE_VERSION', '0.1.0' );

require_once __DIR__ . '/includes/class-cryptum-bridge-settings.php';
require_once __DIR__ . '/includes/class-cryptum-bridge-relay.php';
require_once __DIR__ . '/includes/class-cryptum-bridge-callback-url.php';
require_once __DIR__ . '/includes/class-cryptum-bridge-explorer.php';
require_once __DIR__ . '/includes/class-cryptum-bridge-order-meta-box.php';
require_once __DIR__ . '/includes/class-cryptum-bridge-health-notice.php';
require_once __DIR__ . '/includes/class-cryptum-bridge-admin-settings.php';
require_once __DIR__ . '/includes/class-cryptum-bridge-connect.php';

/**
 * Declares compatibility with WooCommerce's order tables (HPOS).
 *
 * The plugin reads orders only through wc_get_order() and $order->get_meta().
 */
function cryptum_bridge_declare_hpos_compatibility() {
	if ( class_exists( \Automattic\WooCommerce\Utilities\FeaturesUtil::class ) ) {
		\Automattic\WooCommerce\Utilities\FeaturesUtil::declare_compatibility( 'custom_order_tables', __FILE__, true );
	}
}
add_action( 'before_woocommerce_init', 'cryptum_bridge_declare_hpos_compatibility' );

/**
 * Wires the plugin's parts once WooCommerce is known to be active.
 */
function cryptum_bridge_boot() {
	if ( ! class_exists( 'WooCommerce' ) ) {
		add_action( 'admin_notices', 'cryptum_bridge_woocommerce_missing_notice' );
		return;
	}
	$settings = new Cryptum_Bridge_Settings();
	$parts    = array(
		new Cryptum_Bridge_Relay( $settings ),
		new Cryptum_Bridge_Callback_Url( $settings ),
		new Cryptum_Bridge_Order_Meta_Box( $settings, new Cryptum_Bridge_Explorer() ),
		new Cryptum_Bridge_Health_Notice( $settings ),
		new Cryptum_Bridge_Admin_Settings( $settings, plugin_basename( __FILE__ ) ),
		new Cryptum_Bridge_Connect(),
	);
	foreach ( $parts as $part ) {
		$part->register();
	}
}
add_action( 'plugins_loaded', 'cryptum_bridge_boot' );

/**
 * Tells the administrator that the plugin does nothing without WooCommerce.
 */
function cryptum_bridge_woocommerce_missing_notice() {
	echo '<div class="notice notice-error"><p>'
		. esc_html__( 'Cryptum Bridge needs WooCommerce to be installed and active.', 'cryptum-bridge' )
		. '</p></div>';
}
