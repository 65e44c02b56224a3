<?php
/**
 * A front controller for `php -S` standing in for WordPress + WooCommerce.
 *
 * It loads the plugin over the stubs (HTTP over PHP streams), defines the
 * wp-config.php constants from the server's environment, and dispatches
 * `?wc-api=…` as WC_API::handle_api_requests() does and `/wp-json/…` to the
 * registered REST routes, and `/wp-admin/notices` prints the admin notices a
 * shop manager would see. A stand-in for the reference Cryptum plugin's
 * handler sits at the default priority: if it ever answers, the relay failed
 * to stop the request.
 *
 * @package Cryptum_Bridge
 */

define( 'ABSPATH', __DIR__ . '/' );

require __DIR__ . '/../stubs/wordpress.php';
require __DIR__ . '/../stubs/woocommerce.php';
require __DIR__ . '/../stubs/http-streams.php';

// wp-config.php.
foreach ( array( 'CRYPTUM_BRIDGE_URL', 'CRYPTUM_BRIDGE_MODE', 'CRYPTUM_BRIDGE_PUBLIC_URL' ) as $cryptum_constant ) {
	if ( false !== getenv( $cryptum_constant ) ) {
		define( $cryptum_constant, getenv( $cryptum_constant ) );
	}
}

require __DIR__ . '/../../cryptum-bridge.php';
do_action( 'before_woocommerce_init' );
do_action( 'plugins_loaded' );

add_action(
	'woocommerce_api_cryptumcheckout_payment_gateway',
	static function () {
		status_header( 500 );
		header( 'Content-Type: application/json' );
		echo '{"error":"reference_handler_ran"}';
	}
);

$cryptum_path = (string) parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH );

if ( isset( $_GET['wc-api'] ) ) {
	// As WC_API::handle_api_requests(): buffered, then whatever a handler left is dropped.
	$cryptum_request = strtolower( sanitize_key( $_GET['wc-api'] ) );
	ob_start();
	status_header( has_action( 'woocommerce_api_' . $cryptum_request ) ? 200 : 400 );
	do_action( 'woocommerce_api_' . $cryptum_request );
	ob_end_clean();
	die( '-1' );
}

if ( 0 === strpos( $cryptum_path, '/wp-json/' ) ) {
	do_action( 'rest_api_init' );
	$cryptum_route = substr( $cryptum_path, strlen( '/wp-json' ) );
	$cryptum_args  = isset( $GLOBALS['cryptum_stub']['routes'][ $cryptum_route ] ) ? $GLOBALS['cryptum_stub']['routes'][ $cryptum_route ] : null;
	header( 'Content-Type: application/json; charset=UTF-8' );
	if ( null === $cryptum_args || $_SERVER['REQUEST_METHOD'] !== $cryptum_args['methods'] ) {
		status_header( 404 );
		echo '{"code":"rest_no_route"}';
		exit;
	}
	$cryptum_rest = new WP_REST_Request( $_SERVER['REQUEST_METHOD'], $cryptum_route );
	$cryptum_rest->set_body( file_get_contents( 'php://input' ) );
	foreach ( getallheaders() as $cryptum_name => $cryptum_value ) {
		$cryptum_rest->set_header( $cryptum_name, $cryptum_value );
	}
	if ( true !== call_user_func( $cryptum_args['permission_callback'], $cryptum_rest ) ) {
		status_header( 401 );
		echo '{"code":"rest_forbidden"}';
		exit;
	}
	$cryptum_result = call_user_func( $cryptum_args['callback'], $cryptum_rest );
	if ( $cryptum_result instanceof WP_REST_Response ) {
		status_header( $cryptum_result->get_status() );
		echo wp_json_encode( $cryptum_result->get_data() );
	}
	exit;
}

if ( '/wp-admin/notices' === $cryptum_path ) {
	header( 'Content-Type: text/html; charset=UTF-8' );
	do_action( 'admin_notices' );
	exit;
}

status_header( 404 );
echo 'not found';
