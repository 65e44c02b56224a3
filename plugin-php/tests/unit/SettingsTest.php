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
			'URL kept'          => array( 'cryptum_bridge_url', 'https://bridge.example.com:8787', 'https://bridge.example.com:8787' ),
			'URL refused'       => array( 'cryptum_bridge_url', 'javascript:alert(document.cookie)', '' ),
			'public URL'        => array( 'cryptum_bridge_public_url', 'data:text/html,<script>', '' ),
			'mode whitelisted'  => array( 'cryptum_bridge_mode', 'direct<script>', 'relay' ),
			'network'           => array( 'cryptum_bridge_network', 'test', 'test' ),
		);
	}

	/** @dataProvider saved_values */
	public function test_values_are_sanitised_when_woocommerce_saves_them( string $option, string $posted, string $expected ): void {
		( new \Cryptum_Bridge_Admin_Settings( $this->settings() ) )->register();

		$this->assertSame( $expected, apply_filters( 'woocommerce_admin_settings_sanitize_option_' . $option, $posted, array(), $posted ) );
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
