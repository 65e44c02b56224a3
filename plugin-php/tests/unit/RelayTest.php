<?php
/**
 * The relay: what is forwarded to the bridge, and what Cryptum gets back.
 *
 * @package Cryptum_Bridge
 */

namespace Cryptum_Bridge\Tests;

final class RelayTest extends TestCase {

	/** @var array<int, array{0: int, 1: string}> */
	private $emitted = array();

	/** @var array<int, string> The Retry-After of each answer emitted. */
	private $retry_afters = array();

	/** @var int */
	private $terminations = 0;

	private function relay( string $body = '' ): \Cryptum_Bridge_Relay {
		return new \Cryptum_Bridge_Relay(
			$this->settings(),
			function ( $status, $answer, $retry_after ) {
				$this->emitted[]      = array( $status, $answer );
				$this->retry_afters[] = $retry_after;
			},
			function () {
				++$this->terminations;
				throw new Terminated();
			},
			static function () use ( $body ) {
				return $body;
			}
		);
	}

	/** Runs the wc-api handler for a request and returns the one answer it emitted. */
	private function wc_api( string $method, string $body, array $server = array() ): array {
		unset( $_SERVER['HTTP_X_FORWARDED_FOR'], $_SERVER['HTTP_X_WEBHOOK_SIGNATURE'] );
		$_SERVER = array_merge(
			$_SERVER,
			array(
				'REQUEST_METHOD' => $method,
				'REMOTE_ADDR'    => '203.0.113.9',
			),
			$server
		);
		try {
			$this->relay( $body )->handle_wc_api();
			$this->fail( 'the relay did not terminate' );
		} catch ( Terminated $stopped ) {
			$this->assertSame( 1, $this->terminations );
		}
		$this->assertCount( 1, $this->emitted );
		return $this->emitted[0];
	}

	private function forwarded(): array {
		$this->assertCount( 1, $GLOBALS['cryptum_stub']['requests'] );
		return $GLOBALS['cryptum_stub']['requests'][0];
	}

	public function bodies(): array {
		return array(
			'compact'                  => array( '{"status":"confirmed","orderId":"o-1"}' ),
			'pretty, with white space' => array( "{\n  \"status\" : \"confirmed\",\n\t\"orderId\": \"o-1\"\n}\n" ),
			'escapes and unicode'      => array( '{"message":"Pago con \"\u00e9xito\" é \\\\o/","status":"confirmed"}' ),
			'not JSON at all'          => array( "status=confirmed&\x00\xff" ),
			'empty'                    => array( '' ),
		);
	}

	/** @dataProvider bodies */
	public function test_forwards_the_body_byte_for_byte_with_the_signature( string $body ): void {
		cryptum_stub_respond( 200, '{"status": "accepted", "event_id": 7}' );

		$this->wc_api( 'POST', $body, array( 'HTTP_X_WEBHOOK_SIGNATURE' => 'c2lnbmF0dXJl+/==' ) );

		$request = $this->forwarded();
		$this->assertSame( 'POST', $request['method'] );
		$this->assertSame( 'http://127.0.0.1:8787/callbacks/cryptum', $request['url'] );
		$this->assertSame( $body, $request['args']['body'] );
		$this->assertSame( 'c2lnbmF0dXJl+/==', $request['args']['headers']['X-Webhook-Signature'] );
		$this->assertSame( 'application/json', $request['args']['headers']['Content-Type'] );
		$this->assertSame( '203.0.113.9', $request['args']['headers']['X-Forwarded-For'] );
		$this->assertLessThanOrEqual( 5, $request['args']['timeout'] );
		$this->assertSame( 0, $request['args']['redirection'] );
	}

	public function bridge_answers(): array {
		return array(
			'accepted'      => array( 200, '{"status": "accepted", "event_id": 1}' ),
			'duplicate'     => array( 200, '{"status": "duplicate", "event_id": 1}' ),
			'bad payload'   => array( 400, '{"error": "invalid_payload", "detail": "storeId is missing"}' ),
			'bad signature' => array( 401, '{"error": "invalid_signature"}' ),
			'unknown store' => array( 404, '{"error": "unknown_store"}' ),
			'too large'     => array( 413, '{"error": "payload_too_large"}' ),
			'not ready'     => array( 503, '{"error": "storage_unavailable"}' ),
		);
	}

	/** @dataProvider bridge_answers */
	public function test_returns_the_bridges_status_and_body( int $status, string $body ): void {
		cryptum_stub_respond( $status, $body );

		$this->assertSame( array( $status, $body ), $this->wc_api( 'POST', '{}', array( 'HTTP_X_WEBHOOK_SIGNATURE' => 'sig' ) ) );
	}

	public function test_passes_on_the_bridges_retry_after_with_a_429(): void {
		cryptum_stub_respond( 429, '{"error": "rate_limited"}', array( 'retry-after' => '20' ) );

		$this->assertSame( array( 429, '{"error": "rate_limited"}' ), $this->wc_api( 'POST', '{}' ) );
		$this->assertSame( array( '20' ), $this->retry_afters );
	}

	public function retry_afters_not_passed_on(): array {
		return array(
			'absent'          => array( array() ),
			'an HTTP date'    => array( array( 'retry-after' => 'Wed, 21 Oct 2026 07:28:00 GMT' ) ),
			'a header splice' => array( array( 'retry-after' => "20\r\nSet-Cookie: x=1" ) ),
			'negative'        => array( array( 'retry-after' => '-1' ) ),
		);
	}

	/** @dataProvider retry_afters_not_passed_on */
	public function test_passes_on_only_a_retry_after_in_whole_seconds( array $headers ): void {
		cryptum_stub_respond( 429, '{"error": "rate_limited"}', $headers );

		$this->wc_api( 'POST', '{}' );
		$this->assertSame( array( '' ), $this->retry_afters );
	}

	public function test_answers_503_when_the_bridge_cannot_be_reached(): void {
		cryptum_stub_respond( new \WP_Error( 'http_request_failed', 'cURL error 7: Failed to connect to 127.0.0.1 port 8787' ) );

		list( $status, $body ) = $this->wc_api( 'POST', '{}' );

		$this->assertSame( 503, $status );
		$this->assertSame( array( 'error' => 'bridge_unreachable' ), json_decode( $body, true ) );
	}

	public function test_answers_options_with_200_without_forwarding(): void {
		$this->assertSame( array( 200, '' ), $this->wc_api( 'OPTIONS', '' ) );
		$this->assertSame( array(), $GLOBALS['cryptum_stub']['requests'] );
	}

	public function test_refuses_other_methods_without_forwarding(): void {
		$this->assertSame( 405, $this->wc_api( 'GET', '' )[0] );
		$this->assertSame( array(), $GLOBALS['cryptum_stub']['requests'] );
	}

	public function test_runs_before_the_reference_handler_and_stops_it_from_running(): void {
		$relay = $this->relay( '{"status":"confirmed"}' );
		$relay->register();
		$reference_ran = false;
		add_action(
			\Cryptum_Bridge_Relay::ACTION,
			function () use ( &$reference_ran ) {
				$reference_ran = true;
			}
		); // The reference plugin's handler, at the default priority 10.
		cryptum_stub_respond( 200, '{"status": "accepted", "event_id": 1}' );
		$_SERVER['REQUEST_METHOD'] = 'POST';

		$this->assertSame( 1, has_action( \Cryptum_Bridge_Relay::ACTION, array( $relay, 'handle_wc_api' ) ) );
		try {
			do_action( \Cryptum_Bridge_Relay::ACTION );
		} catch ( Terminated $stopped ) {
			// As exit would.
		}

		$this->assertSame( 1, $this->terminations );
		$this->assertFalse( $reference_ran );
		$this->assertSame( array( array( 200, '{"status": "accepted", "event_id": 1}' ) ), $this->emitted );
	}

	public function test_rest_route_is_open_and_forwards_like_the_api_hook(): void {
		$this->relay()->register();
		do_action( 'rest_api_init' );
		$route = $GLOBALS['cryptum_stub']['routes']['/cryptum-bridge/v1/callback'];
		$this->assertSame( 'POST', $route['methods'] );
		$this->assertSame( '__return_true', $route['permission_callback'] );

		$request = new \WP_REST_Request( 'POST', '/cryptum-bridge/v1/callback' );
		$request->set_body( "{ \"status\": \"confirmed\" }\n" );
		$request->set_header( 'X-Webhook-Signature', 'rest-sig' );
		$_SERVER['REMOTE_ADDR'] = '198.51.100.4';
		cryptum_stub_respond( 401, '{"error": "invalid_signature"}' );
		try {
			call_user_func( $route['callback'], $request );
			$this->fail( 'the relay did not terminate' );
		} catch ( Terminated $stopped ) {
			$this->assertSame( array( array( 401, '{"error": "invalid_signature"}' ) ), $this->emitted );
		}
		$forwarded = $this->forwarded();
		$this->assertSame( "{ \"status\": \"confirmed\" }\n", $forwarded['args']['body'] );
		$this->assertSame( 'rest-sig', $forwarded['args']['headers']['X-Webhook-Signature'] );
		$this->assertSame( '198.51.100.4', $forwarded['args']['headers']['X-Forwarded-For'] );
	}

	public function forwarded_for_cases(): array {
		return array(
			'no proxy'            => array( null, '203.0.113.9', '203.0.113.9' ),
			'one proxy'           => array( '198.51.100.1', '203.0.113.9', '198.51.100.1, 203.0.113.9' ),
			'a chain'             => array( '198.51.100.1,192.0.2.7 ', '203.0.113.9', '198.51.100.1, 192.0.2.7, 203.0.113.9' ),
			'IPv6'                => array( '2001:db8::1', '::1', '2001:db8::1, ::1' ),
			'junk hops dropped'   => array( 'evil, 198.51.100.1, <script>', '203.0.113.9', '198.51.100.1, 203.0.113.9' ),
			'no usable addresses' => array( 'unknown', '', '' ),
		);
	}

	/** @dataProvider forwarded_for_cases */
	public function test_appends_the_client_address_to_x_forwarded_for( ?string $incoming, string $remote, string $expected ): void {
		cryptum_stub_respond( 200, '{}' );
		$server = array( 'REMOTE_ADDR' => $remote );
		if ( null !== $incoming ) {
			$server['HTTP_X_FORWARDED_FOR'] = $incoming;
		}

		$this->wc_api( 'POST', '{}', $server );

		$this->assertSame( $expected, $this->forwarded()['args']['headers']['X-Forwarded-For'] );
	}

	public function test_a_signature_with_control_characters_is_not_forwarded(): void {
		cryptum_stub_respond( 401, '{"error": "invalid_signature"}' );

		$this->wc_api( 'POST', '{}', array( 'HTTP_X_WEBHOOK_SIGNATURE' => "abc\r\nX-Injected: 1" ) );

		$this->assertArrayNotHasKey( 'X-Webhook-Signature', $this->forwarded()['args']['headers'] );
	}

	public function test_forwards_to_the_configured_bridge(): void {
		update_option( 'cryptum_bridge_url', 'https://bridge.internal:9443/' );
		cryptum_stub_respond( 200, '{}' );

		$this->wc_api( 'POST', '{}' );

		$this->assertSame( 'https://bridge.internal:9443/callbacks/cryptum', $this->forwarded()['url'] );
	}
}
