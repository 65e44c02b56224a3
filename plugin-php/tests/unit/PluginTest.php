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
			'relay, before the reference plugin'  => array( 'woocommerce_api_cryptumcheckout_payment_gateway', 1 ),
			'REST route'                          => array( 'rest_api_init', 10 ),
			'callback URL (direct mode)'          => array( 'woocommerce_api_request_url', 10 ),
			'order screen box'                    => array( 'add_meta_boxes', 10 ),
			'health notice'                       => array( 'admin_notices', 10 ),
			'settings section'                    => array( 'woocommerce_get_settings_advanced', 10 ),
			'URL refused on save'                 => array( 'woocommerce_admin_settings_sanitize_option_cryptum_bridge_url', 10 ),
			'health check dropped on save'        => array( 'woocommerce_update_options_advanced_cryptum_bridge', 10 ),
			'Settings link on the Plugins screen' => array( 'plugin_action_links_' . plugin_basename( realpath( self::MAIN_FILE ) ), 10 ),
			'create key button'                   => array( 'admin_post_cryptum_bridge_create_key', 10 ),
			'revoke key button'                   => array( 'admin_post_cryptum_bridge_revoke_key', 10 ),
			'key buttons under the section'       => array( 'woocommerce_after_settings_advanced', 10 ),
		);
	}

	/** @dataProvider hooks */
	public function test_boot_wires_each_part( string $hook, int $priority ): void {
		cryptum_bridge_boot();

		$this->assertSame( array( $priority ), array_keys( $GLOBALS['cryptum_stub']['hooks'][ $hook ] ) );
	}

	public function test_boot_wires_each_part_once_for_admin_notices(): void {
		cryptum_bridge_boot();

		// The readiness notice and the one-time key notice.
		$this->assertCount( 2, $GLOBALS['cryptum_stub']['hooks']['admin_notices'][10] );
	}

	public function plugin_headers(): array {
		return array(
			'Plugin Name'          => array( 'Plugin Name', 'Cryptum Bridge' ),
			'Version'              => array( 'Version', CRYPTUM_BRIDGE_VERSION ),
			'Requires at least'    => array( 'Requires at least', '6.5' ),
			'Requires PHP'         => array( 'Requires PHP', '7.4' ),
			'Requires Plugins'     => array( 'Requires Plugins', 'woocommerce' ),
			'WC requires at least' => array( 'WC requires at least', '8.2' ),
			'WC tested up to'      => array( 'WC tested up to', '11.0' ),
			'License'              => array( 'License', 'GPL-2.0-or-later' ),
			'Text Domain'          => array( 'Text Domain', 'cryptum-bridge' ),
		);
	}

	/** @dataProvider plugin_headers */
	public function test_header_names_what_wordpress_and_woocommerce_need( string $field, string $value ): void {
		// As WordPress's get_file_data() reads the first 8 KiB.
		$header = file_get_contents( self::MAIN_FILE, false, null, 0, 8192 );
		$this->assertSame( 1, preg_match( '/^[ \t\/*#@]*' . preg_quote( $field, '/' ) . ':(.*)$/mi', $header, $found ) );
		$this->assertSame( $value, trim( $found[1] ) );
	}

	public function readme_headers(): array {
		return array(
			'Contributors'      => array( 'Contributors', 'cryptumbridge' ),
			'Tags'              => array( 'Tags', 'woocommerce, cryptocurrency, payments, webhooks, cryptum' ),
			'Requires at least' => array( 'Requires at least', '6.5' ),
			'Tested up to'      => array( 'Tested up to', '7.0' ),
			'Requires PHP'      => array( 'Requires PHP', '7.4' ),
			'Requires Plugins'  => array( 'Requires Plugins', 'woocommerce' ),
			'Stable tag'        => array( 'Stable tag', CRYPTUM_BRIDGE_VERSION ),
			'License'           => array( 'License', 'GPLv2 or later' ),
			'License URI'       => array( 'License URI', 'https://www.gnu.org/licenses/gpl-2.0.html' ),
		);
	}

	/** @dataProvider readme_headers */
	public function test_readme_carries_the_standard_headers( string $field, string $value ): void {
		$readme = file_get_contents( __DIR__ . '/../../readme.txt' );
		$this->assertSame( 1, preg_match( '/^' . preg_quote( $field, '/' ) . ':[ \t]*(.*)$/m', $readme, $found ) );
		$this->assertSame( $value, trim( $found[1] ) );
	}

	public function test_the_version_constant_matches_the_header(): void {
		$header = file_get_contents( self::MAIN_FILE, false, null, 0, 8192 );
		$this->assertSame( 1, preg_match( '/^ \* Version:\s*(\S+)$/m', $header, $found ) );
		$this->assertSame( $found[1], CRYPTUM_BRIDGE_VERSION );
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
		update_option( 'cryptum_bridge_api_key', array( 'key_id' => 41, 'truncated_key' => 'abc1234', 'user_id' => 7 ) );
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
