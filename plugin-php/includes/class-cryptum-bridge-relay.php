<?php
/**
 * The relay: Cryptum callbacks that reach WordPress are forwarded to the bridge.
 *
 * The callback's raw bytes and its X-Webhook-Signature go to the bridge's
 * /callbacks/cryptum unchanged (the signature covers the bytes), and the
 * bridge's status and body (and its Retry-After, if any) go back to Cryptum.
 * Then the request stops, so the reference Cryptum plugin's own handler never
 * processes the payment a second time. If the bridge cannot be reached the answer is 503, so Cryptum retries.
 *
 * @package Cryptum_Bridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Forwards callbacks from the WooCommerce API hook and from a REST route.
 */
final class Cryptum_Bridge_Relay {

	/** The reference plugin's callback hook (`?wc-api=cryptumcheckout_payment_gateway`). */
	const ACTION = 'woocommerce_api_cryptumcheckout_payment_gateway';

	/** Before the reference plugin's handler, which uses the default priority 10. */
	const PRIORITY = 1;

	const REST_NAMESPACE  = 'cryptum-bridge/v1';
	const REST_ROUTE      = '/callback';
	const TIMEOUT_SECONDS = 5;

	/** @var Cryptum_Bridge_Settings */
	private $settings;

	/**
	 * Sends an answer to the client: callable( int $status, string $body, string $retry_after ).
	 *
	 * @var callable
	 */
	private $emit;

	/**
	 * Ends the request: callable(). Never returns in production.
	 *
	 * @var callable
	 */
	private $terminate;

	/**
	 * Reads the raw request body: callable(): string.
	 *
	 * @var callable
	 */
	private $read_body;

	/**
	 * @param Cryptum_Bridge_Settings $settings  Where the bridge is.
	 * @param callable|null           $emit      Defaults to self::send().
	 * @param callable|null           $terminate Defaults to exit.
	 * @param callable|null           $read_body Defaults to reading php://input.
	 */
	public function __construct( Cryptum_Bridge_Settings $settings, $emit = null, $terminate = null, $read_body = null ) {
		$this->settings  = $settings;
		$this->emit      = $emit ? $emit : array( __CLASS__, 'send' );
		$this->terminate = $terminate ? $terminate : static function () {
			exit;
		};
		$this->read_body = $read_body ? $read_body : static function () {
			return (string) file_get_contents( 'php://input' );
		};
	}

	public function register(): void {
		add_action( self::ACTION, array( $this, 'handle_wc_api' ), self::PRIORITY );
		add_action( 'rest_api_init', array( $this, 'register_rest_route' ) );
	}

	public function register_rest_route(): void {
		register_rest_route(
			self::REST_NAMESPACE,
			self::REST_ROUTE,
			array(
				'methods'             => 'POST',
				'callback'            => array( $this, 'handle_rest' ),
				// Cryptum posts unauthenticated; the bridge verifies the signature.
				'permission_callback' => '__return_true',
			)
		);
	}

	/** Handles `?wc-api=cryptumcheckout_payment_gateway`. */
	public function handle_wc_api(): void {
		$method    = isset( $_SERVER['REQUEST_METHOD'] ) ? strtoupper( sanitize_key( wp_unslash( $_SERVER['REQUEST_METHOD'] ) ) ) : 'GET';
		$signature = isset( $_SERVER['HTTP_X_WEBHOOK_SIGNATURE'] ) ? (string) wp_unslash( $_SERVER['HTTP_X_WEBHOOK_SIGNATURE'] ) : ''; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- forwarded verbatim; the bridge checks it.
		$this->answer( $this->relay( $method, call_user_func( $this->read_body ), $signature ) );
	}

	/**
	 * Handles POST /wp-json/cryptum-bridge/v1/callback.
	 *
	 * The answer is sent here rather than returned, because the REST server
	 * would re-encode the bridge's JSON body.
	 *
	 * @param WP_REST_Request $request The callback; get_body() holds the raw bytes.
	 */
	public function handle_rest( $request ): void {
		$this->answer( $this->relay( $request->get_method(), $request->get_body(), (string) $request->get_header( 'X-Webhook-Signature' ) ) );
	}

	/**
	 * What to answer a callback: the bridge's answer to the forwarded callback.
	 *
	 * @param string $method    The request's HTTP method.
	 * @param string $body      The raw body.
	 * @param string $signature The X-Webhook-Signature header, '' if absent.
	 * @return array{0: int, 1: string, 2: string} Status, body, and the Retry-After to pass on ('' for none).
	 */
	public function relay( string $method, string $body, string $signature ): array {
		if ( 'OPTIONS' === $method ) {
			return array( 200, '', '' ); // As the reference plugin answers.
		}
		if ( 'POST' !== $method ) {
			return array( 405, '{"error":"method_not_allowed"}', '' );
		}
		$headers = array(
			'Content-Type'    => 'application/json',
			'X-Forwarded-For' => self::forwarded_for(),
		);
		if ( '' !== $signature && ! preg_match( '/[\x00-\x1f\x7f]/', $signature ) ) {
			$headers['X-Webhook-Signature'] = $signature; // A control character could split the header; without it the bridge answers 401.
		}
		$response = wp_remote_post(
			$this->settings->callback_endpoint(),
			array(
				'timeout'     => self::TIMEOUT_SECONDS,
				'redirection' => 0,
				'headers'     => $headers,
				'body'        => $body,
			)
		);
		$status = is_wp_error( $response ) ? 0 : (int) wp_remote_retrieve_response_code( $response );
		if ( $status < 100 ) {
			return array( 503, '{"error":"bridge_unreachable"}', '' );
		}
		// A 429 tells Cryptum when to send again; only whole seconds are passed on.
		$retry_after = trim( (string) wp_remote_retrieve_header( $response, 'retry-after' ) );
		if ( ! preg_match( '/^[0-9]{1,10}$/', $retry_after ) ) {
			$retry_after = '';
		}
		return array( $status, (string) wp_remote_retrieve_body( $response ), $retry_after );
	}

	/**
	 * The client's address appended to the valid addresses of any incoming X-Forwarded-For.
	 */
	public static function forwarded_for(): string {
		$hops       = array();
		$incoming   = isset( $_SERVER['HTTP_X_FORWARDED_FOR'] ) ? (string) wp_unslash( $_SERVER['HTTP_X_FORWARDED_FOR'] ) : ''; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- each hop is validated below.
		$incoming   = explode( ',', $incoming );
		$incoming[] = isset( $_SERVER['REMOTE_ADDR'] ) ? (string) wp_unslash( $_SERVER['REMOTE_ADDR'] ) : ''; // phpcs:ignore WordPress.Security.ValidatedSanitizedInput.InputNotSanitized -- validated below.
		foreach ( $incoming as $hop ) {
			$hop = trim( $hop );
			if ( false !== filter_var( $hop, FILTER_VALIDATE_IP ) ) {
				$hops[] = $hop;
			}
		}
		return implode( ', ', $hops );
	}

	/**
	 * Sends the answer to the client.
	 *
	 * Inside WooCommerce's API handler output is buffered; exit flushes the buffer.
	 *
	 * @param int    $status      HTTP status.
	 * @param string $body        The bridge's JSON, or ''.
	 * @param string $retry_after The bridge's Retry-After in whole seconds, or ''.
	 */
	public static function send( int $status, string $body, string $retry_after = '' ): void {
		status_header( $status );
		header( 'Content-Type: application/json; charset=utf-8' );
		header( 'X-Content-Type-Options: nosniff' );
		if ( '' !== $retry_after ) {
			header( 'Retry-After: ' . $retry_after );
		}
		echo $body; // phpcs:ignore WordPress.Security.EscapeOutput.OutputNotEscaped -- the bridge's JSON relayed byte for byte as application/json, never HTML.
	}

	/**
	 * Sends the answer and ends the request, so no later handler runs.
	 *
	 * @param array{0: int, 1: string, 2: string} $answer Status, body and Retry-After.
	 */
	private function answer( array $answer ): void {
		call_user_func( $this->emit, $answer[0], $answer[1], $answer[2] );
		call_user_func( $this->terminate );
	}
}
