<?php
/**
 * The main file: HPOS compatibility, the WooCommerce check, the hooks it wires, uninstall.
 *
 * @package Cryptum_Bridge
 */

namespace Cryptum_Bridge\Tests;

use Automattic\WooCommerce\Utilities\FeaturesUtil;

final class PluginTest extends TestCase {

	const MAIN_FILE = __DIR__ . '/../../cryptum-bridge.php';

	public function test_declares_hpos_compatibility(): void {
		FeaturesUtil::$declared = array();

		cryptum_bridge_declare_hpos_compatibility();

		$this->assertSame( array( array( 'custom_order_tables', realpath( self::MAIN_FILE ), true ) ), FeaturesUtil::$declared );
	}

	public function hooks(): array {
		return array(
			'relay, before the reference plugin' => array( 'woocommerce_api_cryptumcheckout_payment_gateway', 1 ),
			'REST route'                         => array( 'rest_api_init', 10 ),
			'callback URL (direct mode)'         => array( 'woocommerce_api_request_url', 10 ),
			'order screen box'                   => array( 'add_meta_boxes', 10 ),
			'health notice'                      => array( 'admin_notices', 10 ),
			'settings section'                   => array( 'woocommerce_get_settings_advanced', 10 ),
		);
	}

	/** @dataProvider hooks */
	public function test_boot_wires_each_part( string $hook, int $priority ): void {
		cryptum_bridge_boot();

		$this->assertSame( array( $priority ), array_keys( $GLOBALS['cryptum_stub']['hooks'][ $hook ] ) );
	}

	public function test_header_names_what_wordpress_needs(): void {
		$header = file_get_contents( self::MAIN_FILE, false, null, 0, 2048 );
		foreach ( array( 'Plugin Name:', 'Requires Plugins:     woocommerce', 'Requires PHP:         7.4', 'Text Domain:          cryptum-bridge' ) as $line ) {
			$this->assertStringContainsString( $line, $header );
		}
	}

	public function test_missing_woocommerce_notice_is_escaped_markup(): void {
		ob_start();
		cryptum_bridge_woocommerce_missing_notice();
		$this->assertSame( '<div class="notice notice-error"><p>Cryptum Bridge needs WooCommerce to be installed and active.</p></div>', ob_get_clean() );
	}

	public function test_uninstall_removes_the_options_and_the_cached_check(): void {
		foreach ( \Cryptum_Bridge_Settings::OPTIONS as $option ) {
			update_option( $option, 'x' );
		}
		update_option( 'unrelated', 'kept' );
		set_transient( 'cryptum_bridge_health', 'up', 60 );
		if ( ! defined( 'WP_UNINSTALL_PLUGIN' ) ) {
			define( 'WP_UNINSTALL_PLUGIN', 'cryptum-bridge/cryptum-bridge.php' );
		}

		require __DIR__ . '/../../uninstall.php';

		$this->assertSame( array( 'unrelated' => 'kept' ), $GLOBALS['cryptum_stub']['options'] );
		$this->assertFalse( get_transient( 'cryptum_bridge_health' ) );
	}

	public function text_domains(): array {
		$files = array_merge( array( self::MAIN_FILE ), glob( __DIR__ . '/../../includes/*.php' ) );
		return array_combine( array_map( 'basename', $files ), array_map( function ( $file ) { return array( $file ); }, $files ) );
	}

	/** @dataProvider text_domains */
	public function test_one_text_domain( string $file ): void {
		preg_match_all( "/(?:__|esc_html__|esc_attr__)\\(\\s*'(?:[^'\\\\]|\\\\.)*',\\s*'([^']*)'/", file_get_contents( $file ), $found );
		$this->assertSame( array(), array_values( array_diff( $found[1], array( 'cryptum-bridge' ) ) ) );
	}
}
