<?php
/**
 * Admin notices about the bridge: it does not answer, it is up but not ready,
 * or direct mode has no public callback URL.
 *
 * The bridge's /readyz answers 200 when it can keep a callback now, and 503
 * with {"status": "unavailable", "reasons": [...]} when it cannot (a full disk,
 * a read-only or locked database, stopped workers): a bridge in that state
 * refuses callbacks as surely as a stopped one. The result is cached in a
 * transient for a minute together with the URL checked, the cache is dropped
 * when the settings are saved, and the check times out after two seconds, so
 * admin pages do not wait on the bridge.
 *
 * @package Cryptum_Bridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Tells shop managers when callbacks cannot reach the bridge, and what to do about it.
 */
final class Cryptum_Bridge_Health_Notice {

	const TRANSIENT       = 'cryptum_bridge_health';
	const CACHE_SECONDS   = 60;
	const TIMEOUT_SECONDS = 2;

	/** The bridge's reasons shown at most, and the length each is cut to. */
	const MAX_REASONS      = 10;
	const MAX_REASON_CHARS = 300;

	/** What a check found. */
	const READY       = 'ready';
	const UNREACHABLE = 'unreachable';
	const NOT_READY   = 'not_ready';
	const UNEXPECTED  = 'unexpected';

	/** @var Cryptum_Bridge_Settings */
	private $settings;

	public function __construct( Cryptum_Bridge_Settings $settings ) {
		$this->settings = $settings;
	}

	public function register(): void {
		add_action( 'admin_notices', array( $this, 'render' ) );
		// A save may change the bridge URL: the next page checks again instead of showing the old result.
		add_action( 'woocommerce_update_options_advanced_' . Cryptum_Bridge_Admin_Settings::SECTION, array( __CLASS__, 'forget' ) );
	}

	public function render(): void {
		if ( ! current_user_can( 'manage_woocommerce' ) ) {
			return;
		}
		echo $this->direct_mode_notice() . $this->readiness_notice( $this->check() ); // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- both escape every value.
	}

	/** Drops the cached check. */
	public static function forget(): void {
		delete_transient( self::TRANSIENT );
	}

	/**
	 * What /readyz says, from the cache when the same URL was checked within the last minute.
	 *
	 * @return array{url: string, state: string, status: int, reasons: string[]}
	 */
	public function check(): array {
		$url    = $this->settings->readiness_endpoint();
		$cached = get_transient( self::TRANSIENT );
		if ( is_array( $cached ) && isset( $cached['url'], $cached['state'], $cached['status'], $cached['reasons'] ) && $url === $cached['url'] ) {
			return $cached;
		}
		$response = wp_remote_get(
			$url,
			array(
				'timeout'     => self::TIMEOUT_SECONDS,
				'redirection' => 0,
			)
		);
		$result   = self::classify( $url, $response );
		set_transient( self::TRANSIENT, $result, self::CACHE_SECONDS );
		return $result;
	}

	/**
	 * Reads an answer of /readyz.
	 *
	 * @param string         $url      The URL asked.
	 * @param array|WP_Error $response What the HTTP API returned.
	 * @return array{url: string, state: string, status: int, reasons: string[]}
	 */
	public static function classify( string $url, $response ): array {
		$result = array(
			'url'     => $url,
			'state'   => self::UNREACHABLE,
			'status'  => 0,
			'reasons' => array(),
		);
		$status = is_wp_error( $response ) ? 0 : (int) wp_remote_retrieve_response_code( $response );
		if ( $status < 100 ) {
			return $result;
		}
		$result['status'] = $status;
		if ( 200 === $status ) {
			$result['state'] = self::READY;
			return $result;
		}
		$answer = json_decode( (string) wp_remote_retrieve_body( $response ), true );
		if ( 503 === $status && is_array( $answer ) && isset( $answer['status'] ) && 'unavailable' === $answer['status'] ) {
			$result['state']   = self::NOT_READY;
			$result['reasons'] = self::reasons( isset( $answer['reasons'] ) ? $answer['reasons'] : array() );
			return $result;
		}
		$result['state'] = self::UNEXPECTED; // Something else answers at that URL.
		return $result;
	}

	/**
	 * The notice for a check's result; '' when the bridge is ready.
	 *
	 * @param array $check From check().
	 */
	public function readiness_notice( array $check ): string {
		$url = '<code>' . esc_html( $check['url'] ) . '</code>';
		if ( self::UNREACHABLE === $check['state'] ) {
			return self::notice(
				'error',
				/* translators: %s: the bridge's readiness URL. */
				'<p>' . sprintf( esc_html__( 'Cryptum Bridge: the bridge does not answer at %s. Cryptum payment callbacks are not received until it does; Cryptum sends them again later.', 'cryptum-bridge' ), $url ) . '</p>'
				/* translators: 1: a shell command, 2: a link to the plugin's settings. */
				. '<p>' . sprintf( esc_html__( 'What to do: start the daemon: %1$s, and check the bridge URL in the %2$s.', 'cryptum-bridge' ), '<code>sudo systemctl start cryptum-bridge</code>', self::settings_link() ) . '</p>'
			);
		}
		if ( self::NOT_READY === $check['state'] ) {
			$reasons = '';
			foreach ( $check['reasons'] as $reason ) {
				$reasons .= '<li>' . esc_html( $reason ) . '</li>';
			}
			return self::notice(
				'error',
				/* translators: %s: the bridge's readiness URL. */
				'<p>' . sprintf( esc_html__( 'Cryptum Bridge: the bridge at %s is running but not ready, so it refuses Cryptum payment callbacks (Cryptum sends them again later). It reports:', 'cryptum-bridge' ), $url ) . '</p>'
				. '<ul class="ul-disc">' . ( '' === $reasons ? '<li>' . esc_html__( 'no reason given', 'cryptum-bridge' ) . '</li>' : $reasons ) . '</ul>'
				/* translators: 1: a shell command, 2: a link to the plugin's settings. */
				. '<p>' . sprintf( esc_html__( 'What to do: fix what it reports (for storage: free disk space where the bridge keeps its database); its log has the details: %1$s. This notice goes within a minute of the bridge being ready. %2$s', 'cryptum-bridge' ), '<code>journalctl -u cryptum-bridge</code>', self::settings_link() ) . '</p>'
			);
		}
		if ( self::UNEXPECTED === $check['state'] ) {
			return self::notice(
				'error',
				/* translators: 1: the bridge's readiness URL, 2: an HTTP status code. */
				'<p>' . sprintf( esc_html__( 'Cryptum Bridge: %1$s answered HTTP %2$d, which is not the bridge\'s answer, so Cryptum payment callbacks may not reach the bridge.', 'cryptum-bridge' ), $url, (int) $check['status'] ) . '</p>'
				/* translators: %s: a link to the plugin's settings. */
				. '<p>' . sprintf( esc_html__( 'What to do: check the bridge URL in the %s: it is where cryptum-bridge listens (server.listen in its config), e.g. http://127.0.0.1:8787.', 'cryptum-bridge' ), self::settings_link() ) . '</p>'
			);
		}
		return '';
	}

	/** A warning when direct mode has no usable public URL; '' otherwise. */
	public function direct_mode_notice(): string {
		if ( 'direct' !== $this->settings->mode() || '' !== $this->settings->public_url() ) {
			return '';
		}
		return self::notice(
			'warning',
			'<p>' . esc_html__( 'Cryptum Bridge: direct mode is on, but there is no usable public callback URL, so Cryptum has no bridge address to send the callbacks of new payments to. Until one is set, new payments keep WordPress\'s own callback URL and their callbacks are relayed as in relay mode.', 'cryptum-bridge' ) . '</p>'
			/* translators: %s: a link to the plugin's settings. */
			. '<p>' . sprintf( esc_html__( 'What to do: set the public callback URL (where Cryptum reaches the bridge, e.g. https://pay.example.com/callbacks/cryptum) or choose relay mode, in the %s or with CRYPTUM_BRIDGE_PUBLIC_URL in wp-config.php.', 'cryptum-bridge' ), self::settings_link() ) . '</p>'
		);
	}

	/**
	 * The strings among the bridge's reasons, at most MAX_REASONS, each at most MAX_REASON_CHARS long.
	 *
	 * @param mixed $reasons The `reasons` of the bridge's answer.
	 * @return string[]
	 */
	public static function reasons( $reasons ): array {
		$kept = array();
		foreach ( is_array( $reasons ) ? $reasons : array() as $reason ) {
			if ( ! is_string( $reason ) || '' === trim( $reason ) || ! preg_match( '//u', $reason ) ) {
				continue;
			}
			$reason = trim( $reason );
			if ( preg_match( '/^.{' . self::MAX_REASON_CHARS . '}./su', $reason ) ) {
				$reason = preg_replace( '/^(.{' . self::MAX_REASON_CHARS . '}).+$/su', '$1', $reason ) . '…';
			}
			$kept[] = $reason;
			if ( count( $kept ) >= self::MAX_REASONS ) {
				break;
			}
		}
		return $kept;
	}

	/**
	 * A notice's markup.
	 *
	 * @param string $type `error` or `warning`.
	 * @param string $body Escaped HTML.
	 */
	private static function notice( string $type, string $body ): string {
		return '<div class="notice notice-' . esc_attr( $type ) . '">' . $body . '</div>';
	}

	private static function settings_link(): string {
		return '<a href="' . esc_url( Cryptum_Bridge_Admin_Settings::url() ) . '">' . esc_html__( 'Cryptum Bridge settings', 'cryptum-bridge' ) . '</a>';
	}
}
