<?php
/**
 * The WordPress HTTP API over PHP streams, for the integration router (no curl here).
 *
 * @package Cryptum_Bridge
 */

function cryptum_stub_stream_request( $method, $url, $args ) {
	$headers = array();
	foreach ( isset( $args['headers'] ) ? $args['headers'] : array() as $name => $value ) {
		$headers[] = $name . ': ' . $value;
	}
	$context = stream_context_create(
		array(
			'http' => array(
				'method'          => $method,
				'header'          => implode( "\r\n", $headers ),
				'content'         => isset( $args['body'] ) ? $args['body'] : '',
				'timeout'         => isset( $args['timeout'] ) ? (float) $args['timeout'] : 5.0,
				'ignore_errors'   => true, // A 4xx/5xx answer is an answer, not a failure.
				'follow_location' => 0,
			),
		)
	);
	$body = @file_get_contents( $url, false, $context ); // phpcs:ignore WordPress.PHP.NoSilencedErrors -- a refused connection becomes a WP_Error.
	if ( false === $body || empty( $http_response_header ) ) {
		return new WP_Error( 'http_request_failed', 'could not connect to ' . $url );
	}
	preg_match( '#^HTTP/\S+\s+(\d{3})\s*(.*)$#', $http_response_header[0], $status );
	return array(
		'response' => array(
			'code'    => (int) $status[1],
			'message' => $status[2],
		),
		'headers'  => array_slice( $http_response_header, 1 ),
		'body'     => $body,
	);
}

function wp_remote_post( $url, $args = array() ) {
	return cryptum_stub_stream_request( 'POST', $url, $args );
}

function wp_remote_get( $url, $args = array() ) {
	return cryptum_stub_stream_request( 'GET', $url, $args );
}
