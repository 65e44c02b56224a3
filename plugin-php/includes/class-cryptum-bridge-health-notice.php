<?php
/**
 * An admin notice when the bridge's /healthz does not answer 200.
 *
 * The result is cached in a transient for a minute and the check times out
 * after two seconds, so admin pages do not wait on the bridge.
 *
 * @package Cryptum_Bridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Warns shop managers that callbacks cannot reach the bridge.
 */
final class Cryptum_Bridge_Health_Notice {

	const TRANSIENT       = 'cryptum_bridge_health';
	const CACHE_SECONDS   = 60;
	const TIMEOUT_SECONDS = 2;

	/** @var Cryptum_Bridge_Settings */
	private $settings;

	public function __construct( Cryptum_Bridge_Settings $settings ) {
		$this->settings = $settings;
	}

	public function register(): void {
		add_action( 'admin_notices', array( $this, 'render' ) );
	}

	public function render(): void {
		if ( ! current_user_can( 'manage_woocommerce' ) || $this->bridge_is_up() ) {
			return;
		}
		printf(
			'<div class="notice notice-error"><p>%s</p></div>',
			esc_html(
				sprintf(
					/* translators: %s: the bridge's health URL. */
					__( 'Cryptum Bridge: the bridge does not answer at %s. Cryptum payment callbacks are refused with 503 until it does, and Cryptum sends them again.', 'cryptum-bridge' ),
					$this->settings->health_endpoint()
				)
			)
		);
	}

	/** Whether /healthz answered 200, from the cache when the last check is recent. */
	public function bridge_is_up(): bool {
		$cached = get_transient( self::TRANSIENT );
		if ( 'up' === $cached || 'down' === $cached ) {
			return 'up' === $cached;
		}
		$response = wp_remote_get(
			$this->settings->health_endpoint(),
			array(
				'timeout'     => self::TIMEOUT_SECONDS,
				'redirection' => 0,
			)
		);
		$up = ! is_wp_error( $response ) && 200 === (int) wp_remote_retrieve_response_code( $response );
		set_transient( self::TRANSIENT, $up ? 'up' : 'down', self::CACHE_SECONDS );
		return $up;
	}
}
