<?php
/**
 * Block-explorer links for the transactions Cryptum reports, per protocol and network.
 *
 * @package Cryptum_Bridge
 */

defined( 'ABSPATH' ) || exit;

/**
 * Maps a protocol and a transaction hash to an explorer URL.
 */
final class Cryptum_Bridge_Explorer {

	// Conservative hash shapes; `D` stops `$` from accepting a trailing newline.
	const EVM_HASH = '/^0x[0-9a-fA-F]{64}$/D';
	const HEX_HASH = '/^[0-9a-fA-F]{64}$/D';
	const BASE58   = '/^[1-9A-HJ-NP-Za-km-z]{64,90}$/D';

	/** Protocol => array( hash pattern, production URL, test-network URL ); %s is the hash. */
	const EXPLORERS = array(
		'ETHEREUM'   => array( self::EVM_HASH, 'https://etherscan.io/tx/%s', 'https://sepolia.etherscan.io/tx/%s' ),
		'POLYGON'    => array( self::EVM_HASH, 'https://polygonscan.com/tx/%s', 'https://amoy.polygonscan.com/tx/%s' ),
		'BSC'        => array( self::EVM_HASH, 'https://bscscan.com/tx/%s', 'https://testnet.bscscan.com/tx/%s' ),
		'AVAXCCHAIN' => array( self::EVM_HASH, 'https://snowtrace.io/tx/%s', 'https://testnet.snowtrace.io/tx/%s' ),
		'CELO'       => array( self::EVM_HASH, 'https://celoscan.io/tx/%s', 'https://alfajores.celoscan.io/tx/%s' ),
		'BITCOIN'    => array( self::HEX_HASH, 'https://mempool.space/tx/%s', 'https://mempool.space/testnet/tx/%s' ),
		'SOLANA'     => array( self::BASE58, 'https://explorer.solana.com/tx/%s', 'https://explorer.solana.com/tx/%s?cluster=devnet' ),
		'STELLAR'    => array( self::HEX_HASH, 'https://stellar.expert/explorer/public/tx/%s', 'https://stellar.expert/explorer/testnet/tx/%s' ),
		'XRP'        => array( self::HEX_HASH, 'https://livenet.xrpl.org/transactions/%s', 'https://testnet.xrpl.org/transactions/%s' ),
		'CARDANO'    => array( self::HEX_HASH, 'https://cardanoscan.io/transaction/%s', 'https://preprod.cardanoscan.io/transaction/%s' ),
		'HATHOR'     => array( self::HEX_HASH, 'https://explorer.hathor.network/transaction/%s', 'https://explorer.testnet.hathor.network/transaction/%s' ),
	);

	/**
	 * Whether explorers are known for a protocol (as Cryptum names it, in any case).
	 *
	 * @param string $protocol E.g. `CELO`.
	 */
	public function knows( string $protocol ): bool {
		return isset( self::EXPLORERS[ strtoupper( $protocol ) ] );
	}

	/**
	 * The explorer URL, or null for an unknown protocol or a hash of the wrong shape.
	 *
	 * @param string $protocol As Cryptum names it, e.g. `CELO`.
	 * @param string $hash     The transaction hash.
	 * @param string $network  `production` or `test`.
	 */
	public function transaction_url( string $protocol, string $hash, string $network ): ?string {
		$protocol = strtoupper( $protocol );
		if ( ! isset( self::EXPLORERS[ $protocol ] ) ) {
			return null;
		}
		list( $pattern, $production, $test ) = self::EXPLORERS[ $protocol ];
		if ( ! preg_match( $pattern, $hash ) ) {
			return null;
		}
		return sprintf( 'test' === $network ? $test : $production, $hash );
	}
}
