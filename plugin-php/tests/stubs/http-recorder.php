<?php
/**
 * The WordPress HTTP API for unit tests: records each request and answers
 * with the next queued response (or a WP_Error when none is queued).
 *
 * @package Cryptum_Bridge
 */

/** Queues the answer to the next request: a status, body and headers, or a WP_Error. */
function cryptum_stub_respond( $status_or_error, $body = '', $headers = array() ) {
	$GLOBALS['cryptum_stub']['responses'][] = is_wp_error( $status_or_error )
		? $status_or_error
		: array(
			'response' => array(
				'code'    => $status_or_error,
				'message' => '',
			),
			'headers'  => array_merge( array( 'content-type' => 'application/json' ), $headers ),
			'body'     => $body,
		);
}

function cryptum_stub_http( $method, $url, $args ) {
	$GLOBALS['cryptum_stub']['requests'][] = array(
		'method' => $method,
		'url'    => $url,
		'args'   => $args,
	);
	$next = array_shift( $GLOBALS['cryptum_stub']['responses'] );
	return null === $next ? new WP_Error( 'http_request_failed', 'cURL error 7: Failed to connect' ) : $next;
}

function wp_remote_post( $url, $args = array() ) {
	return cryptum_stub_http( 'POST', $url, $args );
}

function wp_remote_get( $url, $args = array() ) {
	return cryptum_stub_http( 'GET', $url, $args );
}
