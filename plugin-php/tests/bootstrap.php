<?php
/**
 * Loads the plugin over the WordPress and WooCommerce stubs, with the recording HTTP API.
 *
 * @package Cryptum_Bridge
 */

define( 'ABSPATH', dirname( __DIR__ ) . '/' );

require __DIR__ . '/stubs/wordpress.php';
require __DIR__ . '/stubs/woocommerce.php';
require __DIR__ . '/stubs/http-recorder.php';
require dirname( __DIR__ ) . '/cryptum-bridge.php';
require __DIR__ . '/unit/TestCase.php';
require __DIR__ . '/unit/Terminated.php';
