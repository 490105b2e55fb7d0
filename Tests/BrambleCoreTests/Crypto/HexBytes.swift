/// Bytes from lower-case hex as the test vectors print them (spaces and line breaks
/// between the digits are skipped), for the crypto tests.
func hexBytes(_ hex: String) -> [UInt8] {
    let nibbles = hex.utf8.compactMap { character -> UInt8? in
        switch character {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): character - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): character - UInt8(ascii: "a") + 10
        default: nil
        }
    }
    return stride(from: 0, to: nibbles.count - 1, by: 2).map { nibbles[$0] << 4 | nibbles[$0 + 1] }
}
