/// An element of GF(2^255 − 19), the field under Curve25519, for the Elligator 2 map that
/// CPace hashes the password onto the curve with (the X25519 scalar multiplication itself is
/// swift-crypto's).
///
/// Five limbs of 51 bits (radix 2^51), least significant first. Every operation is
/// straight-line: no branch and no memory index depends on an element's value, because the
/// elements this type meets are derived from the password. Only exponents (public
/// constants) steer control flow.
///
/// Invariant: every limb of a stored element is below 2^52. Operations keep it by ending
/// with one carry pass; the representation is not unique (canonical only when encoded).
struct Field25519: Sendable {
    fileprivate var l0: UInt64, l1: UInt64, l2: UInt64, l3: UInt64, l4: UInt64

    private static let limbMask: UInt64 = (1 << 51) - 1

    fileprivate init(_ l0: UInt64, _ l1: UInt64, _ l2: UInt64, _ l3: UInt64, _ l4: UInt64) {
        (self.l0, self.l1, self.l2, self.l3, self.l4) = (l0, l1, l2, l3, l4)
    }

    static let zero = Field25519(0, 0, 0, 0, 0)
    static let one = Field25519(1, 0, 0, 0, 0)

    /// A small constant such as Curve25519's A = 486662.
    init(small value: UInt32) {
        self.init(UInt64(value), 0, 0, 0, 0)
    }

    // MARK: Encoding

    /// RFC 7748's decodeUCoordinate for 255 bits: 32 bytes little-endian, bit 255 ignored.
    /// Values from p to 2^255 − 1 are accepted (they are reduced by the arithmetic and by
    /// `littleEndianBytes`). Callers pass fixed-size data (a hash prefix), hence the
    /// precondition rather than an error.
    init(littleEndianBytes bytes: [UInt8]) {
        precondition(bytes.count == 32, "a field element is 32 bytes")
        func word(_ index: Int) -> UInt64 {
            var word: UInt64 = 0
            for byte in 0..<8 { word |= UInt64(bytes[index * 8 + byte]) << (8 * byte) }
            return word
        }
        let w0 = word(0), w1 = word(1), w2 = word(2)
        let w3 = word(3) & 0x7FFF_FFFF_FFFF_FFFF  // the masked top bit
        let mask = Self.limbMask
        self.init(
            w0 & mask,
            ((w0 >> 51) | (w1 << 13)) & mask,
            ((w1 >> 38) | (w2 << 26)) & mask,
            ((w2 >> 25) | (w3 << 39)) & mask,
            (w3 >> 12) & mask
        )
    }

    /// The canonical encoding: fully reduced below p, 32 bytes little-endian (RFC 7748's
    /// encodeUCoordinate).
    var littleEndianBytes: [UInt8] {
        let mask = Self.limbMask
        // One carry pass brings the value below 2^255 + 38 < 2p.
        var t0 = l0, t1 = l1, t2 = l2, t3 = l3, t4 = l4
        t1 &+= t0 >> 51; t0 &= mask
        t2 &+= t1 >> 51; t1 &= mask
        t3 &+= t2 >> 51; t2 &= mask
        t4 &+= t3 >> 51; t3 &= mask
        t0 &+= 19 &* (t4 >> 51); t4 &= mask
        // q = 1 exactly when the value is at least p, i.e. value + 19 reaches 2^255.
        var q = (t0 &+ 19) >> 51
        q = (t1 &+ q) >> 51
        q = (t2 &+ q) >> 51
        q = (t3 &+ q) >> 51
        q = (t4 &+ q) >> 51
        // Subtract q·p as "add 19q, then drop bit 255".
        t0 &+= 19 &* q
        t1 &+= t0 >> 51; t0 &= mask
        t2 &+= t1 >> 51; t1 &= mask
        t3 &+= t2 >> 51; t2 &= mask
        t4 &+= t3 >> 51; t3 &= mask
        t4 &= mask

        let words = [t0 | (t1 << 51), (t1 >> 13) | (t2 << 38), (t2 >> 26) | (t3 << 25), (t3 >> 39) | (t4 << 12)]
        var bytes = [UInt8](repeating: 0, count: 32)
        for index in 0..<32 {
            bytes[index] = UInt8(truncatingIfNeeded: words[index / 8] >> (8 * (index % 8)))
        }
        return bytes
    }

    // MARK: Arithmetic

    /// Carries five wide column sums into limbs below 2^52; the carry out of the top limb
    /// wraps around times 19, since 2^255 ≡ 19 (mod p).
    private static func carried(
        _ c0: UInt128, _ c1: UInt128, _ c2: UInt128, _ c3: UInt128, _ c4: UInt128
    ) -> Field25519 {
        let mask = UInt128(limbMask)
        let c1 = c1 &+ (c0 >> 51)
        let c2 = c2 &+ (c1 >> 51)
        let c3 = c3 &+ (c2 >> 51)
        let c4 = c4 &+ (c3 >> 51)
        let r0 = (c0 & mask) &+ (c4 >> 51) &* 19
        let r1 = (c1 & mask) &+ (r0 >> 51)
        return Field25519(
            UInt64(truncatingIfNeeded: r0 & mask),
            UInt64(truncatingIfNeeded: r1),
            UInt64(truncatingIfNeeded: c2 & mask),
            UInt64(truncatingIfNeeded: c3 & mask),
            UInt64(truncatingIfNeeded: c4 & mask)
        )
    }

    static func + (a: Field25519, b: Field25519) -> Field25519 {
        carried(
            UInt128(a.l0 &+ b.l0), UInt128(a.l1 &+ b.l1), UInt128(a.l2 &+ b.l2),
            UInt128(a.l3 &+ b.l3), UInt128(a.l4 &+ b.l4))
    }

    /// a − b computed as a + 4p − b, so no limb goes negative (b's limbs are below 2^52,
    /// 4p's are about 2^53).
    static func - (a: Field25519, b: Field25519) -> Field25519 {
        let fourP0: UInt64 = 0x1F_FFFF_FFFF_FFB4  // 4 · (2^51 − 19)
        let fourPi: UInt64 = 0x1F_FFFF_FFFF_FFFC  // 4 · (2^51 − 1)
        return carried(
            UInt128(a.l0 &+ fourP0 &- b.l0), UInt128(a.l1 &+ fourPi &- b.l1),
            UInt128(a.l2 &+ fourPi &- b.l2), UInt128(a.l3 &+ fourPi &- b.l3),
            UInt128(a.l4 &+ fourPi &- b.l4))
    }

    static prefix func - (a: Field25519) -> Field25519 {
        zero - a
    }

    /// Schoolbook product of the limbs; the columns above 2^255 fold back times 19. With
    /// limbs below 2^52 each column stays below 2^112, well inside UInt128.
    static func * (a: Field25519, b: Field25519) -> Field25519 {
        func product(_ x: UInt64, _ y: UInt64) -> UInt128 { UInt128(x) &* UInt128(y) }
        let b1 = b.l1 &* 19, b2 = b.l2 &* 19, b3 = b.l3 &* 19, b4 = b.l4 &* 19
        let c0 = product(a.l0, b.l0) &+ product(a.l1, b4) &+ product(a.l2, b3) &+ product(a.l3, b2) &+ product(a.l4, b1)
        let c1 = product(a.l0, b.l1) &+ product(a.l1, b.l0) &+ product(a.l2, b4) &+ product(a.l3, b3) &+ product(a.l4, b2)
        let c2 = product(a.l0, b.l2) &+ product(a.l1, b.l1) &+ product(a.l2, b.l0) &+ product(a.l3, b4) &+ product(a.l4, b3)
        let c3 = product(a.l0, b.l3) &+ product(a.l1, b.l2) &+ product(a.l2, b.l1) &+ product(a.l3, b.l0) &+ product(a.l4, b4)
        let c4 = product(a.l0, b.l4) &+ product(a.l1, b.l3) &+ product(a.l2, b.l2) &+ product(a.l3, b.l1) &+ product(a.l4, b.l0)
        return carried(c0, c1, c2, c3, c4)
    }

    func squared() -> Field25519 {
        self * self
    }

    /// self^e for a PUBLIC exponent e, given as 64-bit words least significant first. Plain
    /// square-and-multiply: the branches follow the exponent's bits, never the base.
    func power(_ exponent: [UInt64]) -> Field25519 {
        var result = Field25519.one
        for word in exponent.reversed() {
            for bit in (0..<64).reversed() {
                result = result.squared()
                if (word >> UInt64(bit)) & 1 == 1 { result = result * self }
            }
        }
        return result
    }

    /// self^(p − 2), which is 1/self for a nonzero element and 0 for zero (Fermat).
    func inverted() -> Field25519 {
        power(Exponent.pMinus2)
    }

    /// A square root, and whether one exists (p ≡ 5 mod 8): r = self^((p+3)/8) is a root
    /// when r² = self, r·√−1 is one when r² = −self; otherwise self is not a square. The
    /// root returned is the one whose canonical encoding is even (sgn0 = 0).
    func squareRoot() -> (root: Field25519, isSquare: Choice) {
        let candidate = power(Exponent.pPlus3Over8)
        let candidateSquared = candidate.squared()
        let direct = candidateSquared.isEqual(to: self)
        let twisted = candidateSquared.isEqual(to: -self)
        var root = Field25519.select(candidate, candidate * Field25519.sqrtMinusOne, twisted)
        root = Field25519.select(root, -root, root.sgn0)
        return (root, direct | twisted)
    }

    /// The Legendre symbol's test: self is a square (zero counts as one).
    var isSquare: Choice {
        let symbol = power(Exponent.pMinus1Over2)
        return symbol.isEqual(to: .one) | symbol.isZero
    }

    /// 2^((p−1)/4), a square root of −1 (2 is not a square modulo p).
    static let sqrtMinusOne = Field25519(small: 2).power(Exponent.pMinus1Over4)

    /// Public exponents, as 64-bit words least significant first.
    enum Exponent {
        /// p − 2 = 2^255 − 21, for inversion.
        static let pMinus2: [UInt64] = [0xFFFF_FFFF_FFFF_FFEB, .max, .max, 0x7FFF_FFFF_FFFF_FFFF]
        /// (p − 1)/2 = 2^254 − 10, Euler's criterion.
        static let pMinus1Over2: [UInt64] = [0xFFFF_FFFF_FFFF_FFF6, .max, .max, 0x3FFF_FFFF_FFFF_FFFF]
        /// (p − 1)/4 = 2^253 − 5.
        static let pMinus1Over4: [UInt64] = [0xFFFF_FFFF_FFFF_FFFB, .max, .max, 0x1FFF_FFFF_FFFF_FFFF]
        /// (p + 3)/8 = 2^252 − 2.
        static let pPlus3Over8: [UInt64] = [0xFFFF_FFFF_FFFF_FFFE, .max, .max, 0x0FFF_FFFF_FFFF_FFFF]
        /// (p − 5)/8 = 2^252 − 3.
        static let pMinus5Over8: [UInt64] = [0xFFFF_FFFF_FFFF_FFFD, .max, .max, 0x0FFF_FFFF_FFFF_FFFF]
    }

    // MARK: Constant-time selection and comparison

    /// A secret-dependent boolean kept as a mask (all ones or all zeros) so that it can pick
    /// between values without a branch.
    struct Choice: Sendable {
        fileprivate let mask: UInt64

        static let yes = Choice(mask: .max)
        static let no = Choice(mask: 0)

        /// Declassifies the choice, for results that are public (a test, an abort).
        var isTrue: Bool { mask != 0 }

        static func | (a: Choice, b: Choice) -> Choice { Choice(mask: a.mask | b.mask) }
        static func & (a: Choice, b: Choice) -> Choice { Choice(mask: a.mask & b.mask) }
        static func ^ (a: Choice, b: Choice) -> Choice { Choice(mask: a.mask ^ b.mask) }
        static prefix func ! (a: Choice) -> Choice { Choice(mask: ~a.mask) }

        /// All ones when value is zero, else all zeros.
        fileprivate static func ifZero(_ value: UInt64) -> Choice {
            // For value < 2^63, (value | −value) has its top bit set exactly when value ≠ 0.
            let nonzero = (value | (0 &- value)) >> 63
            return Choice(mask: nonzero &- 1)
        }
    }

    /// RFC 9380's CMOV(ifFalse, ifTrue, choice), limb by limb with masks.
    static func select(_ ifFalse: Field25519, _ ifTrue: Field25519, _ choice: Choice) -> Field25519 {
        let m = choice.mask
        return Field25519(
            ifFalse.l0 ^ (m & (ifFalse.l0 ^ ifTrue.l0)),
            ifFalse.l1 ^ (m & (ifFalse.l1 ^ ifTrue.l1)),
            ifFalse.l2 ^ (m & (ifFalse.l2 ^ ifTrue.l2)),
            ifFalse.l3 ^ (m & (ifFalse.l3 ^ ifTrue.l3)),
            ifFalse.l4 ^ (m & (ifFalse.l4 ^ ifTrue.l4))
        )
    }

    /// Equality of the values (not the limbs): compares every byte of both canonical
    /// encodings, without stopping at the first difference.
    func isEqual(to other: Field25519) -> Choice {
        let a = littleEndianBytes, b = other.littleEndianBytes
        var difference: UInt8 = 0
        for index in 0..<32 { difference |= a[index] ^ b[index] }
        return .ifZero(UInt64(difference))
    }

    var isZero: Choice { isEqual(to: .zero) }

    /// RFC 9380's sgn0 for a prime field: the parity of the canonical value.
    var sgn0: Choice {
        Choice(mask: 0 &- UInt64(littleEndianBytes[0] & 1))
    }
}
