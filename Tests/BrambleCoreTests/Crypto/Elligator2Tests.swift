import Testing

@testable import BrambleCore

/// map_to_curve_elligator2_curve25519 against RFC 9380 Appendix J.7's vectors. Those give
/// the field elements u (big-endian, as printed) and the mapped points Q (before cofactor
/// clearing), so they test the map alone. Copied from the text of
/// draft-irtf-cfrg-hash-to-curve-16 (the vectors RFC 9380 published).
@Suite struct Elligator2Tests {
    struct Vector: Sendable, CustomTestStringConvertible {
        let u: String, x: String, y: String
        var testDescription: String { "u = \(u.prefix(16))…" }
    }

    /// J.7.1 curve25519_XMD:SHA-512_ELL2_NU_: u[0], Q.x, Q.y, and P = 8·Q's x.
    static let nonUniform: [(vector: Vector, px: String)] = [
        (Vector(u: "608d892b641f0328523802a6603427c26e55e6f27e71a91a478148d45b5093cd",
                x: "51125222da5e763d97f3c10fcc92ea6860b9ccbbd2eb1285728f566721c1e65b",
                y: "343d2204f812d3dfc5304a5808c6c0d81a903a5d228b342442aa3c9ba5520a3d"),
         "1bb913f0c9daefa0b3375378ffa534bda5526c97391952a7789eb976edfe4d08"),
        (Vector(u: "46f5b22494bfeaa7f232cc8d054be68561af50230234d7d1d63d1d9abeca8da5",
                x: "7d56d1e08cb0ccb92baf069c18c49bb5a0dcd927eff8dcf75ca921ef7f3e6eeb",
                y: "404d9a7dc25c9c05c44ab9a94590e7c3fe2dcec74533a0b24b188a5d5dacf429"),
         "7c22950b7d900fa866334262fcaea47a441a578df43b894b4625c9b450f9a026"),
        (Vector(u: "235fe40c443766ce7e18111c33862d66c3b33267efa50d50f9e8e5d252a40aaa",
                x: "3fbe66b9c9883d79e8407150e7c2a1c8680bee496c62fabe4619a72b3cabe90f",
                y: "08ec476147c9a0a3ff312d303dbbd076abb7551e5fce82b48ab14b433f8d0a7b"),
         "31ad08a8b0deeb2a4d8b0206ca25f567ab4e042746f792f4b7973f3ae2096c52"),
        (Vector(u: "001e92a544463bda9bd04ddbe3d6eed248f82de32f522669efc5ddce95f46f5b",
                x: "227e0bb89de700385d19ec40e857db6e6a3e634b1c32962f370d26f84ff19683",
                y: "5f86ff3851d262727326a32c1bf7655a03665830fa7f1b8b1e5a09d85bc66e4a"),
         "027877759d155b1997d0d84683a313eb78bdb493271d935b622900459d52ceaa"),
        (Vector(u: "1a68a1af9f663592291af987203393f707305c7bac9c8d63d6a729bdc553dc19",
                x: "3bcd651ee54d5f7b6013898aab251ee8ecc0688166fce6e9548d38472f6bd196",
                y: "1bb36ad9197299f111b4ef21271c41f4b7ecf5543db8bb5931307ebdb2eaa465"),
         "5fd892c0958d1a75f54c3182a18d286efab784e774d1e017ba2fb252998b5dc1"),
    ]

    /// J.7.2 curve25519_XMD:SHA-512_ELL2_RO_: each u[0] → Q0 and u[1] → Q1.
    static let randomOracle: [Vector] = [
        Vector(u: "005fe8a7b8fef0a16c105e6cadf5a6740b3365e18692a9c05bfbb4d97f645a6a",
               x: "36b4df0c864c64707cbf6cf36e9ee2c09a6cb93b28313c169be29561bb904f98",
               y: "6cd59d664fb58c66c892883cd0eb792e52055284dac3907dd756b45d15c3983d"),
        Vector(u: "1347edbec6a2b5d8c02e058819819bee177077c9d10a4ce165aab0fd0252261a",
               x: "3fa114783a505c0b2b2fbeef0102853c0b494e7757f2a089d0daae7ed9a0db2b",
               y: "76c0fe7fec932aaafb8eefb42d9cbb32eb931158f469ff3050af15cfdbbeff94"),
        Vector(u: "49bed021c7a3748f09fa8cdfcac044089f7829d3531066ac9e74e0994e05bc7d",
               x: "16b3d86e056b7970fa00165f6f48d90b619ad618791661b7b5e1ec78be10eac1",
               y: "4ab256422d84c5120b278cbdfc4e1facc5baadffeccecf8ee9bf3946106d50ca"),
        Vector(u: "5c36525b663e63389d886105cee7ed712325d5a97e60e140aba7e2ce5ae851b6",
               x: "7ec29ddbf34539c40adfa98fcb39ec36368f47f30e8f888cc7e86f4d46e0c264",
               y: "10d1abc1cae2d34c06e247f2141ba897657fb39f1080d54f09ce0af128067c74"),
        Vector(u: "6412b7485ba26d3d1b6c290a8e1435b2959f03721874939b21782df17323d160",
               x: "71de3dadfe268872326c35ac512164850860567aea0e7325e6b91a98f86533ad",
               y: "26a08b6e9a18084c56f2147bf515414b9b63f1522e1b6c5649f7d4b0324296ec"),
        Vector(u: "24c7b46c1c6d9a21d32f5707be1380ab82db1054fde82865d5c9e3d968f287b2",
               x: "5704069021f61e41779e2ba6b932268316d6d2a6f064f997a22fef16d1eaeaca",
               y: "50483c7540f64fb4497619c050f2c7fe55454ec0f0e79870bb44302e34232210"),
        Vector(u: "5e123990f11bbb5586613ffabdb58d47f64bb5f2fa115f8ea8df0188e0c9e1b5",
               x: "7a94d45a198fb5daa381f45f2619ab279744efdd8bd8ed587fc5b65d6cea1df0",
               y: "67d44f85d376e64bb7d713585230cdbfafc8e2676f7568e0b6ee59361116a6e1"),
        Vector(u: "5e8553eb00438a0bb1e7faa59dec6d8087f9c8011e5fb8ed9df31cb6c0d4ac19",
               x: "30506fb7a32136694abd61b6113770270debe593027a968a01f271e146e60c18",
               y: "7eeee0e706b40c6b5174e551426a67f975ad5a977ee2f01e8e20a6d612458c3b"),
        Vector(u: "20f481e85da7a3bf60ac0fb11ed1d0558fc6f941b3ac5469aa8b56ec883d6d7d",
               x: "02d606e2699b918ee36f2818f2bc5013e437e673c9f9b9cdc15fd0c5ee913970",
               y: "29e9dc92297231ef211245db9e31767996c5625dfbf92e1c8107ef887365de1e"),
        Vector(u: "017d57fd257e9a78913999a23b52ca988157a81b09c5442501d07fed20869465",
               x: "38920e9b988d1ab7449c0fa9a6058192c0c797bb3d42ac345724341a1aa98745",
               y: "24dcc1be7c4d591d307e89049fd2ed30aae8911245a9d8554bf6032e5aa40d3d"),
    ]

    @Test(arguments: nonUniform.map(\.vector) + randomOracle)
    func mapsTheFieldElementToTheRFCPoint(_ vector: Vector) {
        let point = Elligator2.mapToCurve25519(bigEndian(vector.u))
        #expect(bigEndianHex(point.u) == vector.x)
        #expect(bigEndianHex(point.y) == vector.y)
    }

    /// P = clear_cofactor(Q) = 8·Q, by three x-only doublings: an independent check of the
    /// curve constant and of the points being on curve25519.
    @Test(arguments: nonUniform)
    func eightTimesTheMappedPointIsTheRFCsP(_ vector: Vector, px: String) {
        var x = Elligator2.mapToCurve25519(bigEndian(vector.u)).u
        for _ in 0..<3 { x = doubled(x) }
        #expect(bigEndianHex(x) == px)
    }

    @Test func mappedPointsLieOnTheCurve() {
        // y² · xd³ = xn³ + A · xn² · xd + xn · xd², the curve equation with x = xn / xd.
        for seed in UInt32(1)...100 {
            let u = Field25519(small: seed * 7919) * Field25519.sqrtMinusOne + Field25519(small: seed)
            let point = Elligator2.mapToCurve25519(u)
            let (xn, xd, y) = (point.xn, point.xd, point.y)
            let left = y.squared() * xd.squared() * xd
            let right = xn.squared() * xn + Elligator2.j * xn.squared() * xd + xn * xd.squared()
            #expect(left.isEqual(to: right).isTrue)
        }
    }

    /// The CPace draft's Appendix A.5 gives Elligator 2 in another form: v = −A / (1 + 2r²),
    /// ε = legendre(v³ + A·v² + v), x = ε·v − (1 − ε)·A/2. Both forms must give the same u.
    @Test func agreesWithTheCPaceDraftsFormulation() {
        let a = Elligator2.j
        let halfA = a * Field25519(small: 2).inverted()
        for seed in UInt32(1)...100 {
            let r = Field25519(small: seed &* 2_654_435_761) * Field25519(small: seed | 1).inverted()
            let v = -a * (Field25519.one + Field25519(small: 2) * r.squared()).inverted()
            let curve = v.squared() * v + a * v.squared() + v
            let epsilon = curve.power(Field25519.Exponent.pMinus1Over2)
            let x = epsilon * v - (Field25519.one - epsilon) * halfA
            #expect(Elligator2.mapToCurve25519(r).u.isEqual(to: x).isTrue)
        }
    }
}

/// x(2P) = (x² − 1)² / (4x(x² + A·x + 1)) on a Montgomery curve with B = 1.
private func doubled(_ x: Field25519) -> Field25519 {
    let numerator = (x.squared() - .one).squared()
    let denominator = Field25519(small: 4) * x * (x.squared() + Elligator2.j * x + .one)
    return numerator * denominator.inverted()
}

private func bigEndian(_ hex: String) -> Field25519 {
    Field25519(littleEndianBytes: hexBytes(hex).reversed())
}

private func bigEndianHex(_ element: Field25519) -> String {
    element.littleEndianBytes.reversed().map { byte in
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }.joined()
}
