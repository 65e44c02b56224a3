<?php
/**
 * The settings section under WooCommerce > Settings > Advanced > Cryptum Bridge.
 *
 * WooCommerce saves the fields as options; each option passes through the
 * plugin's own sanitiser. A URL that is not usable is refused with an error on
 * the screen and the saved value is kept (WooCommerce skips an option whose
 * sanitiser returns null). A field set by a wp-config.php constant is shown
 * read-only with the constant's name. The Plugins screen gets a "Settings"
 * link to the section.
 *
 * @package Cryptum_Bridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Adds the plugin's section to WooCommerce's advanced settings.
 */
final class Cryptum_Bridge_Admin_Settings {

	const SECTION = 'cryptum_bridge';

	/** Option name => sanitiser on Cryptum_Bridge_Settings, for the options that cannot be refused. */
	const SANITIZERS = array(
		'cryptum_bridge_mode'    => 'sanitize_mode',
		'cryptum_bridge_network' => 'sanitize_network',
	);

	/** @var Cryptum_Bridge_Settings */
	private $settings;

	/** @var string The main file's plugin_basename(), e.g. `cryptum-bridge/cryptum-bridge.php`; '' for no Plugins-screen link. */
	private $plugin_basename;

	/**
	 * @param Cryptum_Bridge_Settings $settings        The settings in force.
	 * @param string                  $plugin_basename The main file's plugin_basename().
	 */
	public function __construct( Cryptum_Bridge_Settings $settings, string $plugin_basename = '' ) {
		$this->settings        = $settings;
		$this->plugin_basename = $plugin_basename;
	}

	public function register(): void {
		add_filter( 'woocommerce_get_sections_advanced', array( $this, 'add_section' ) );
		add_filter( 'woocommerce_get_settings_advanced', array( $this, 'fields' ), 10, 2 );
		foreach ( self::SANITIZERS as $option => $sanitizer ) {
			add_filter( 'woocommerce_admin_settings_sanitize_option_' . $option, array( Cryptum_Bridge_Settings::class, $sanitizer ) );
		}
		add_filter( 'woocommerce_admin_settings_sanitize_option_' . Cryptum_Bridge_Settings::OPTIONS['bridge_url'], array( $this, 'sanitize_bridge_url' ) );
		add_filter( 'woocommerce_admin_settings_sanitize_option_' . Cryptum_Bridge_Settings::OPTIONS['public_url'], array( $this, 'sanitize_public_url' ) );
		if ( '' !== $this->plugin_basename ) {
			add_filter( 'plugin_action_links_' . $this->plugin_basename, array( $this, 'action_links' ) );
		}
	}

	/** The section's address: WooCommerce > Settings > Advanced > Cryptum Bridge. */
	public static function url(): string {
		return admin_url( 'admin.php?page=wc-settings&tab=advanced&section=' . self::SECTION );
	}

	/**
	 * The Plugins screen's links for this plugin, "Settings" first.
	 *
	 * @param array $links The links WordPress has, e.g. Deactivate.
	 */
	public function action_links( $links ): array {
		$settings = '<a href="' . esc_url( self::url() ) . '">' . esc_html__( 'Settings', 'cryptum-bridge' ) . '</a>';
		return array_merge( array( 'settings' => $settings ), is_array( $links ) ? $links : array() );
	}

	/**
	 * The bridge URL to save; null (keep the saved one) with an error on the screen when it is not usable.
	 *
	 * @param mixed $value The posted value, as WooCommerce cleaned it.
	 */
	public function sanitize_bridge_url( $value ): ?string {
		return self::url_or_refusal( $value, __( 'Bridge URL', 'cryptum-bridge' ) );
	}

	/**
	 * The public URL to save; null (keep the saved one) with an error on the screen when it is not usable.
	 *
	 * @param mixed $value The posted value, as WooCommerce cleaned it.
	 */
	public function sanitize_public_url( $value ): ?string {
		return self::url_or_refusal( $value, __( 'Public callback URL', 'cryptum-bridge' ) );
	}

	/**
	 * '' for an empty field (the default applies), the cleaned URL, or null after reporting the refusal.
	 *
	 * @param mixed  $value The posted value.
	 * @param string $label The field's title.
	 */
	private static function url_or_refusal( $value, string $label ): ?string {
		$value = is_string( $value ) ? trim( $value ) : '';
		if ( '' === $value ) {
			return '';
		}
		$url = Cryptum_Bridge_Settings::sanitize_url( $value );
		if ( '' !== $url ) {
			return $url;
		}
		if ( class_exists( 'WC_Admin_Settings' ) ) {
			// WooCommerce escapes the errors it shows.
			WC_Admin_Settings::add_error(
				sprintf(
					/* translators: 1: a field's title, 2: the value that was entered. */
					__( 'Cryptum Bridge: %1$s "%2$s" was not saved: it must start with http:// or https:// and name a host. The previous value is kept.', 'cryptum-bridge' ),
					$label,
					$value
				)
			);
		}
		return null;
	}

	/**
	 * @param array $sections Section id => title.
	 */
	public function add_section( $sections ): array {
		$sections                  = is_array( $sections ) ? $sections : array();
		$sections[ self::SECTION ] = __( 'Cryptum Bridge', 'cryptum-bridge' );
		return $sections;
	}

	/**
	 * The section's fields, or the other sections' fields unchanged.
	 *
	 * @param array  $fields  The fields WooCommerce has for the section.
	 * @param string $section The current section id.
	 */
	public function fields( $fields, $section = '' ): array {
		if ( self::SECTION !== $section ) {
			return is_array( $fields ) ? $fields : array();
		}
		return array(
			array(
				'id'    => self::SECTION,
				'type'  => 'title',
				'title' => __( 'Cryptum Bridge', 'cryptum-bridge' ),
				'desc'  => __( 'Where Cryptum Checkout callbacks go. Constants in wp-config.php override these fields.', 'cryptum-bridge' ),
			),
			$this->field(
				'bridge_url',
				array(
					'type'    => 'text',
					'title'   => __( 'Bridge URL', 'cryptum-bridge' ),
					'desc'    => __( 'Where WordPress reaches the bridge, e.g. http://127.0.0.1:8787.', 'cryptum-bridge' ),
					'default' => Cryptum_Bridge_Settings::DEFAULT_BRIDGE_URL,
				)
			),
			$this->field(
				'mode',
				array(
					'type'    => 'select',
					'title'   => __( 'Mode', 'cryptum-bridge' ),
					'desc'    => __( 'Relay: Cryptum posts to WordPress, which forwards to the bridge. Direct: Cryptum is given the bridge\'s public URL.', 'cryptum-bridge' ),
					'default' => 'relay',
					'options' => array(
						'relay'  => __( 'Relay', 'cryptum-bridge' ),
						'direct' => __( 'Direct', 'cryptum-bridge' ),
					),
				)
			),
			$this->field(
				'public_url',
				array(
					'type'  => 'text',
					'title' => __( 'Public callback URL', 'cryptum-bridge' ),
					'desc'  => __( 'Direct mode: the bridge\'s callback URL as Cryptum reaches it, e.g. https://pay.example.com/callbacks/cryptum.', 'cryptum-bridge' ),
				)
			),
			$this->field(
				'network',
				array(
					'type'    => 'select',
					'title'   => __( 'Explorer network', 'cryptum-bridge' ),
					'desc'    => __( 'Which block explorers the order screen links to.', 'cryptum-bridge' ),
					'default' => 'production',
					'options' => array(
						'production' => __( 'Production', 'cryptum-bridge' ),
						'test'       => __( 'Test networks', 'cryptum-bridge' ),
					),
				)
			),
			array(
				'id'   => self::SECTION,
				'type' => 'sectionend',
			),
		);
	}

	/**
	 * One field; read-only and never saved, naming its constant, when a constant sets it.
	 *
	 * @param string $key   A key of Cryptum_Bridge_Settings::OPTIONS, also the name of its getter.
	 * @param array  $field The field's WooCommerce settings array.
	 */
	private function field( string $key, array $field ): array {
		$field['id'] = Cryptum_Bridge_Settings::OPTIONS[ $key ];
		$constant    = $this->settings->overriding_constant( $key );
		if ( null !== $constant ) {
			$field['custom_attributes'] = array( 'disabled' => 'disabled' );
			$field['is_option']         = false; // A disabled field posts nothing: do not save it over the stored option.
			$field['value']             = call_user_func( array( $this->settings, $key ) ); // The value in force.
			/* translators: %s: a constant's name, e.g. CRYPTUM_BRIDGE_URL. */
			$field['desc'] = sprintf( __( 'Set by %s in wp-config.php.', 'cryptum-bridge' ), $constant );
		}
		return $field;
	}
}
