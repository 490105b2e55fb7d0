/// Elligator 2 onto curve25519: RFC 9380's map_to_curve_elligator2_curve25519 (Appendix
/// G.2.1, q = 5 mod 8, K = 1), step for step and straight-line. CPace's calculate_generator
/// (draft-irtf-cfrg-cpace-21, Section 8.2) feeds it the password-derived field element, so
/// nothing here may branch on a value: the selections are masked CMOVs.
enum Elligator2 {
    /// Curve25519's Montgomery coefficient A (RFC 7748), RFC 9380's J (with K = 1).
    static let j = Field25519(small: 486_662)

    /// c2 = 2^c1 with c1 = (q + 3)/8.
    static let c2 = Field25519(small: 2).power(Field25519.Exponent.pPlus3Over8)

    /// c3 = sqrt(−1). Which of the two roots does not matter: the map's x does not depend
    /// on it, and y's sign is fixed by sgn0 at the end.
    static let c3 = Field25519.sqrtMinusOne

    /// A point of curve25519 as RFC 9380 returns it: x = xn / xd, and y (its yd is 1).
    struct Point: Sendable {
        let xn: Field25519
        let xd: Field25519
        let y: Field25519

        /// The Montgomery u-coordinate, the only part CPace's X25519 suite uses.
        var u: Field25519 { xn * xd.inverted() }
    }

    /// map_to_curve_elligator2_curve25519(u), RFC 9380 Appendix G.2.1. The numbered
    /// comments are the RFC's steps.
    static func mapToCurve25519(_ u: Field25519) -> Point {
        var tv1 = u.squared()                       // 1.  tv1 = u^2
        tv1 = tv1 + tv1                             // 2.  tv1 = 2 * tv1
        let xd = tv1 + .one                         // 3.  xd = tv1 + 1, nonzero: −1 is a square, tv1 is not
        let x1n = -j                                // 4.  x1n = −J
        var tv2 = xd.squared()                      // 5.  tv2 = xd^2
        let gxd = tv2 * xd                          // 6.  gxd = tv2 * xd
        var gx1 = j * tv1                           // 7.  gx1 = J * tv1
        gx1 = gx1 * x1n                             // 8.  gx1 = gx1 * x1n
        gx1 = gx1 + tv2                             // 9.  gx1 = gx1 + tv2
        gx1 = gx1 * x1n                             // 10. gx1 = gx1 * x1n
        var tv3 = gxd.squared()                     // 11. tv3 = gxd^2
        tv2 = tv3.squared()                         // 12. tv2 = tv3^2
        tv3 = tv3 * gxd                             // 13. tv3 = tv3 * gxd
        tv3 = tv3 * gx1                             // 14. tv3 = tv3 * gx1
        tv2 = tv2 * tv3                             // 15. tv2 = tv2 * tv3
        var y11 = tv2.power(Field25519.Exponent.pMinus5Over8)  // 16. y11 = tv2^c4
        y11 = y11 * tv3                             // 17. y11 = y11 * tv3
        let y12 = y11 * c3                          // 18. y12 = y11 * c3
        tv2 = y11.squared()                         // 19. tv2 = y11^2
        tv2 = tv2 * gxd                             // 20. tv2 = tv2 * gxd
        let e1 = tv2.isEqual(to: gx1)               // 21. e1 = tv2 == gx1
        let y1 = Field25519.select(y12, y11, e1)    // 22. y1 = CMOV(y12, y11, e1)
        let x2n = x1n * tv1                         // 23. x2n = x1n * tv1
        var y21 = y11 * u                           // 24. y21 = y11 * u
        y21 = y21 * c2                              // 25. y21 = y21 * c2
        let y22 = y21 * c3                          // 26. y22 = y21 * c3
        let gx2 = gx1 * tv1                         // 27. gx2 = gx1 * tv1
        tv2 = y21.squared()                         // 28. tv2 = y21^2
        tv2 = tv2 * gxd                             // 29. tv2 = tv2 * gxd
        let e2 = tv2.isEqual(to: gx2)               // 30. e2 = tv2 == gx2
        let y2 = Field25519.select(y22, y21, e2)    // 31. y2 = CMOV(y22, y21, e2)
        tv2 = y1.squared()                          // 32. tv2 = y1^2
        tv2 = tv2 * gxd                             // 33. tv2 = tv2 * gxd
        let e3 = tv2.isEqual(to: gx1)               // 34. e3 = tv2 == gx1
        let xn = Field25519.select(x2n, x1n, e3)    // 35. xn = CMOV(x2n, x1n, e3)
        var y = Field25519.select(y2, y1, e3)       // 36. y = CMOV(y2, y1, e3)
        let e4 = y.sgn0                             // 37. e4 = sgn0(y) == 1
        y = Field25519.select(y, -y, e3 ^ e4)       // 38. y = CMOV(y, −y, e3 XOR e4)
        return Point(xn: xn, xd: xd, y: y)          // 39. return (xn, xd, y, 1)
    }
}
