<?php
/**
 * Settings: sanitising, defaults, wp-config.php constants, and the settings section.
 *
 * @package Cryptum_Bridge
 */

namespace Cryptum_Bridge\Tests;

final class SettingsTest extends TestCase {

	public function urls(): array {
		return array(
			'http'                 => array( 'http://127.0.0.1:8787', 'http://127.0.0.1:8787' ),
			'https with path'      => array( ' https://pay.example.com/callbacks/cryptum ', 'https://pay.example.com/callbacks/cryptum' ),
			'upper-case scheme'    => array( 'HTTPS://pay.example.com', 'HTTPS://pay.example.com' ),
			'javascript'           => array( 'javascript:alert(1)', '' ),
			'ftp'                  => array( 'ftp://files.example.com', '' ),
			'no scheme'            => array( 'pay.example.com/callbacks', '' ),
			'no host'              => array( 'http:///callbacks', '' ),
			'markup stripped'      => array( 'https://pay.example.com/"><script>', 'https://pay.example.com/script' ),
			'not a string'         => array( array( 'http://x' ), '' ),
			'empty'                => array( '', '' ),
		);
	}

	/** @dataProvider urls */
	public function test_sanitize_url_keeps_only_http_and_https( $input, string $expected ): void {
		$this->assertSame( $expected, \Cryptum_Bridge_Settings::sanitize_url( $input ) );
	}

	public function modes(): array {
		return array(
			'relay'          => array( 'relay', 'relay' ),
			'direct'         => array( 'direct', 'direct' ),
			'case and space' => array( ' Direct ', 'direct' ),
			'unknown'        => array( 'proxy', 'relay' ),
			'empty'          => array( '', 'relay' ),
			'not a string'   => array( 1, 'relay' ),
		);
	}

	/** @dataProvider modes */
	public function test_sanitize_mode_is_a_whitelist( $input, string $expected ): void {
		$this->assertSame( $expected, \Cryptum_Bridge_Settings::sanitize_mode( $input ) );
	}

	public function networks(): array {
		return array(
			'production' => array( 'production', 'production' ),
			'test'       => array( 'test', 'test' ),
			'unknown'    => array( 'mainnet', 'production' ),
		);
	}

	/** @dataProvider networks */
	public function test_sanitize_network_is_a_whitelist( $input, string $expected ): void {
		$this->assertSame( $expected, \Cryptum_Bridge_Settings::sanitize_network( $input ) );
	}

	public function test_defaults(): void {
		$settings = $this->settings();
		$this->assertSame( 'http://127.0.0.1:8787', $settings->bridge_url() );
		$this->assertSame( 'relay', $settings->mode() );
		$this->assertSame( '', $settings->public_url() );
		$this->assertSame( 'production', $settings->network() );
	}

	public function test_a_bad_saved_bridge_url_falls_back_to_the_default(): void {
		update_option( 'cryptum_bridge_url', 'javascript:alert(1)' );
		$this->assertSame( 'http://127.0.0.1:8787', $this->settings()->bridge_url() );
	}

	public function overrides(): array {
		return array(
			'bridge URL' => array( 'CRYPTUM_BRIDGE_URL', 'cryptum_bridge_url', 'http://10.0.0.5:8787', 'bridge_url', 'https://bridge.internal', 'https://bridge.internal' ),
			'mode'       => array( 'CRYPTUM_BRIDGE_MODE', 'cryptum_bridge_mode', 'relay', 'mode', 'direct', 'direct' ),
			'public URL' => array( 'CRYPTUM_BRIDGE_PUBLIC_URL', 'cryptum_bridge_public_url', 'https://old.example.com/callbacks/cryptum', 'public_url', 'https://pay.example.com/callbacks/cryptum', 'https://pay.example.com/callbacks/cryptum' ),
			'bad mode'   => array( 'CRYPTUM_BRIDGE_MODE', 'cryptum_bridge_mode', 'direct', 'mode', 'sideways', 'relay' ),
			'bad URL'    => array( 'CRYPTUM_BRIDGE_PUBLIC_URL', 'cryptum_bridge_public_url', 'https://pay.example.com', 'public_url', 'file:///etc/passwd', '' ),
		);
	}

	/**
	 * @dataProvider overrides
	 */
	public function test_constants_override_saved_options_and_are_sanitised( string $constant, string $option, string $saved, string $getter, string $defined, string $expected ): void {
		update_option( $option, $saved );
		$this->assertSame( $saved, call_user_func( array( $this->settings(), $getter ) ) );

		$settings = $this->settings( array( $constant => $defined ) );

		$this->assertSame( $expected, call_user_func( array( $settings, $getter ) ) );
		$this->assertSame( $constant, $settings->overriding_constant( $getter ) );
	}

	/**
	 * A constant cannot be undefined again: this runs in its own process.
	 *
	 * @runInSeparateProcess
	 * @preserveGlobalState disabled
	 */
	public function test_real_constants_are_read_by_default(): void {
		$this->assertNull( ( new \Cryptum_Bridge_Settings() )->overriding_constant( 'mode' ) );
		define( 'CRYPTUM_BRIDGE_MODE', 'direct' );
		$this->assertSame( 'direct', ( new \Cryptum_Bridge_Settings() )->mode() );
	}

	public function test_settings_section_in_woocommerce_advanced(): void {
		( new \Cryptum_Bridge_Admin_Settings( $this->settings() ) )->register();

		$sections = apply_filters( 'woocommerce_get_sections_advanced', array( '' => 'Page setup' ) );
		$this->assertSame( array( '' => 'Page setup', 'cryptum_bridge' => 'Cryptum Bridge' ), $sections );

		$this->assertSame( array( 'other' ), apply_filters( 'woocommerce_get_settings_advanced', array( 'other' ), 'keys' ) );
		$fields = apply_filters( 'woocommerce_get_settings_advanced', array(), 'cryptum_bridge' );
		$ids    = array_column( array_slice( $fields, 1, -1 ), 'id' );
		$this->assertSame( array( 'cryptum_bridge_url', 'cryptum_bridge_mode', 'cryptum_bridge_public_url', 'cryptum_bridge_network' ), $ids );
	}

	public function saved_values(): array {
		return array(
			'URL kept'           => array( 'cryptum_bridge_url', 'https://bridge.example.com:8787', 'https://bridge.example.com:8787' ),
			'URL trimmed'        => array( 'cryptum_bridge_url', ' http://127.0.0.1:8787 ', 'http://127.0.0.1:8787' ),
			'URL emptied'        => array( 'cryptum_bridge_url', '', '' ),
			'public URL'         => array( 'cryptum_bridge_public_url', 'https://pay.example.com/callbacks/cryptum', 'https://pay.example.com/callbacks/cryptum' ),
			'public URL emptied' => array( 'cryptum_bridge_public_url', '  ', '' ),
			'mode whitelisted'   => array( 'cryptum_bridge_mode', 'direct<script>', 'relay' ),
			'network'            => array( 'cryptum_bridge_network', 'test', 'test' ),
		);
	}

	/** @dataProvider saved_values */
	public function test_values_are_sanitised_when_woocommerce_saves_them( string $option, string $posted, string $expected ): void {
		( new \Cryptum_Bridge_Admin_Settings( $this->settings() ) )->register();

		$this->assertSame( $expected, apply_filters( 'woocommerce_admin_settings_sanitize_option_' . $option, $posted, array(), $posted ) );
		$this->assertSame( array(), $GLOBALS['cryptum_stub']['wc_settings_errors'] );
	}

	/**
	 * Saves one field as WC_Admin_Settings::save_fields() does: an option whose sanitiser returns null is skipped.
	 *
	 * @param string $option The option.
	 * @param string $posted The posted value.
	 */
	private function woocommerce_saves( string $option, string $posted ): void {
		$value = apply_filters( 'woocommerce_admin_settings_sanitize_option_' . $option, $posted, array( 'id' => $option ), $posted );
		if ( null !== $value ) {
			update_option( $option, $value );
		}
	}

	public function refused_urls(): array {
		$cases = array();
		foreach ( array( 'cryptum_bridge_url' => 'Bridge URL', 'cryptum_bridge_public_url' => 'Public callback URL' ) as $option => $title ) {
			$cases += array(
				"$title: javascript" => array( $option, $title, 'javascript:alert(document.cookie)' ),
				"$title: data"       => array( $option, $title, 'data:text/html,<script>' ),
				"$title: ftp"        => array( $option, $title, 'ftp://files.example.com' ),
				"$title: no scheme"  => array( $option, $title, 'pay.example.com/callbacks/cryptum' ),
				"$title: no host"    => array( $option, $title, 'http:///callbacks' ),
				"$title: a typo"     => array( $option, $title, 'htps://pay.example.com' ),
			);
		}
		return $cases;
	}

	/** @dataProvider refused_urls */
	public function test_an_unusable_url_is_refused_with_an_error_and_the_saved_value_kept( string $option, string $title, string $posted ): void {
		update_option( $option, 'https://kept.example.com:8787' );
		( new \Cryptum_Bridge_Admin_Settings( $this->settings() ) )->register();

		$this->woocommerce_saves( $option, $posted );

		$this->assertSame( 'https://kept.example.com:8787', get_option( $option ) );
		$this->assertSame(
			array( 'Cryptum Bridge: ' . $title . ' "' . $posted . '" was not saved: it must start with http:// or https:// and name a host. The previous value is kept.' ),
			$GLOBALS['cryptum_stub']['wc_settings_errors']
		);
	}

	public function test_a_usable_url_is_saved_without_an_error(): void {
		update_option( 'cryptum_bridge_url', 'https://old.example.com' );
		( new \Cryptum_Bridge_Admin_Settings( $this->settings() ) )->register();

		$this->woocommerce_saves( 'cryptum_bridge_url', 'http://10.0.0.5:8787' );

		$this->assertSame( 'http://10.0.0.5:8787', get_option( 'cryptum_bridge_url' ) );
		$this->assertSame( array(), $GLOBALS['cryptum_stub']['wc_settings_errors'] );
	}

	public function test_the_plugins_screen_links_to_the_settings_section(): void {
		( new \Cryptum_Bridge_Admin_Settings( $this->settings(), 'cryptum-bridge/cryptum-bridge.php' ) )->register();

		$links = apply_filters( 'plugin_action_links_cryptum-bridge/cryptum-bridge.php', array( 'deactivate' => '<a href="#">Deactivate</a>' ) );

		$this->assertSame(
			array(
				'settings'   => '<a href="' . self::settings_href() . '">Settings</a>',
				'deactivate' => '<a href="#">Deactivate</a>',
			),
			$links
		);
		$this->assertSame( 'https://shop.example.com/wp-admin/admin.php?page=wc-settings&tab=advanced&section=cryptum_bridge', \Cryptum_Bridge_Admin_Settings::url() );
	}

	public function test_no_plugins_screen_link_without_the_plugins_basename(): void {
		( new \Cryptum_Bridge_Admin_Settings( $this->settings() ) )->register();

		$this->assertFalse( has_filter( 'plugin_action_links_' ) );
		$this->assertSame( array(), preg_grep( '/^plugin_action_links/', array_keys( $GLOBALS['cryptum_stub']['hooks'] ) ) );
	}

	public function test_a_field_set_by_a_constant_is_read_only_and_never_saved(): void {
		$settings = $this->settings( array( 'CRYPTUM_BRIDGE_URL' => 'http://10.0.0.5:8787' ) );
		$fields   = ( new \Cryptum_Bridge_Admin_Settings( $settings ) )->fields( array(), 'cryptum_bridge' );
		$by_id    = array_column( $fields, null, 'id' );

		$url = $by_id['cryptum_bridge_url'];
		$this->assertSame( array( 'disabled' => 'disabled' ), $url['custom_attributes'] );
		$this->assertFalse( $url['is_option'] );
		$this->assertSame( 'http://10.0.0.5:8787', $url['value'] );
		$this->assertStringContainsString( 'CRYPTUM_BRIDGE_URL', $url['desc'] );
		$this->assertArrayNotHasKey( 'custom_attributes', $by_id['cryptum_bridge_mode'] );
	}
}
