/// Checks a TOML document for what the TOML parser underneath (toml++
/// inside TOMLKit, compiled with its assertions on, in release builds too)
/// aborts on instead of reporting, both found by the fuzzer:
/// - a non-ASCII character outside strings and comments, where TOML 1.0
///   allows none (bare keys are A-Z a-z 0-9 _ -): `[\u{FFFD}bridge]]`;
/// - a place where a key must start but none does: `[` at the end of a
///   line, `a. = 1`, `{ , }`;
/// - a place where a value must start but none does: `a =` at the end of
///   a line, `["x",}"y"]`;
/// - a control character TOML does not allow (all but tab, and a carriage
///   return only before a line feed): `[[\rbridge]]`.
/// Pure; it reads strings, comments, table headers, keys and the nesting
/// of arrays and inline tables, nothing more.
public enum TOMLText {
    public struct Problem: Error, Hashable, Sendable {
        public var line: Int
        public var column: Int
        public var message: String
    }

    public static func check(_ text: String) -> Problem? {
        var scanner = Scanner(Array(text.unicodeScalars))
        return scanner.run()
    }

    struct Scanner {
        enum Container { case array, inlineTable }
        let scalars: [Unicode.Scalar]
        var index = 0
        var line = 1
        var column = 1
        /// Arrays and inline tables open in the current value.
        var containers: [Container] = []
        /// A key must start at the next significant character.
        var expectingKey = false
        /// Within a key (a header's or before `=`): a `.` asks for another.
        var inKey = false
        /// A value must start at the next significant character (`]` too
        /// when it is an array's next element).
        var expectingValue = false
        var valueMayClose = false
        var atLineStart = true

        init(_ scalars: [Unicode.Scalar]) { self.scalars = scalars }

        var current: Unicode.Scalar? { index < scalars.count ? scalars[index] : nil }

        mutating func advance(_ count: Int = 1) {
            for _ in 0..<count where index < scalars.count {
                if scalars[index] == "\n" {
                    line += 1
                    column = 1
                } else {
                    column += 1
                }
                index += 1
            }
        }

        func starts(_ pattern: String) -> Bool {
            let pattern = Array(pattern.unicodeScalars)
            return index + pattern.count <= scalars.count && Array(scalars[index..<index + pattern.count]) == pattern
        }

        func problem(_ message: String) -> Problem { Problem(line: line, column: column, message: message) }

        /// A control character TOML does not allow here (`newline`: whether a line feed may come).
        func control(_ scalar: Unicode.Scalar, newline: Bool) -> Problem? {
            if scalar == "\t" || (newline && scalar == "\n") { return nil }
            if scalar == "\r", newline, index + 1 < scalars.count, scalars[index + 1] == "\n" { return nil }
            guard scalar.value < 0x20 || scalar.value == 0x7F else { return nil }
            return problem("control character U+\(hex(scalar.value)) (TOML allows only tab and line ends)")
        }

        func hex(_ value: UInt32) -> String {
            let digits = String(value, radix: 16, uppercase: true)
            return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
        }

        static func isBareKey(_ scalar: Unicode.Scalar) -> Bool {
            ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar)
                || scalar == "_" || scalar == "-"
        }

        /// Skips a string starting here; a problem if it does not end where TOML says.
        mutating func skipString() -> Problem? {
            let multi = starts("\"\"\"") || starts("'''")
            let quote = current!
            let literal = quote == "'"
            advance(multi ? 3 : 1)
            while let scalar = current {
                if !multi && scalar == "\n" { return problem("a string without its closing \(quote) on this line") }
                if let problem = control(scalar, newline: multi) { return problem }
                if !literal && scalar == "\\" { advance(2); continue }
                if multi ? starts(String(repeating: String(quote), count: 3)) : scalar == quote {
                    advance(multi ? 3 : 1)
                    while multi, current == quote { advance() }  // up to two quotes may end the content
                    return nil
                }
                advance()
            }
            return problem("a string without its closing \(quote)")
        }

        mutating func run() -> Problem? {
            while let scalar = current {
                if let problem = control(scalar, newline: true) { return problem }
                if scalar == " " || scalar == "\t" || scalar == "\r" {
                    advance()
                    continue
                }
                if scalar == "#" {
                    if expectingValue && containers.last != .array { return problem("a value is missing before the comment") }
                    while let next = current, next != "\n" {
                        if let problem = control(next, newline: true) { return problem }
                        advance()
                    }
                    continue
                }
                if scalar == "\n" {
                    if expectingKey { return problem("a key is missing here") }
                    if expectingValue && containers.last != .array { return problem("a value is missing here") }
                    if containers.isEmpty {
                        atLineStart = true
                        inKey = false
                    }
                    advance()
                    continue
                }
                if scalar.value > 0x7F {
                    return problem("character U+\(hex(scalar.value)) outside a string or comment (keys are ASCII letters, digits, _ and -; quote anything else)")
                }
                if expectingKey {
                    guard Self.isBareKey(scalar) || scalar == "\"" || scalar == "'"
                        || (scalar == "}" && containers.last == .inlineTable) else {
                        return problem("a key is missing before \"\(scalar)\"")
                    }
                    expectingKey = false
                }
                if expectingValue {
                    if scalar == "," || scalar == "}" || scalar == "=" || (scalar == "]" && !valueMayClose) {
                        return problem("a value is missing before \"\(scalar)\"")
                    }
                    expectingValue = false
                }
                if atLineStart && containers.isEmpty {
                    atLineStart = false
                    if scalar == "[" {
                        advance(starts("[[") ? 2 : 1)
                        expectingKey = true
                        inKey = true
                        continue
                    }
                    inKey = true
                }
                switch scalar {
                case "\"", "'":
                    if let problem = skipString() { return problem }
                    continue
                case "." where inKey:
                    expectingKey = true
                case "=":
                    inKey = false
                    expectingValue = true
                    valueMayClose = false
                case "]" where inKey && containers.isEmpty:
                    inKey = false
                case "[":
                    containers.append(.array)
                    expectingValue = true
                    valueMayClose = true
                case "]":
                    if containers.last == .array { containers.removeLast() }
                case "{":
                    containers.append(.inlineTable)
                    expectingKey = true
                    inKey = true
                case "}":
                    if containers.last == .inlineTable { containers.removeLast() }
                    inKey = false
                case "," where containers.last == .inlineTable:
                    expectingKey = true
                    inKey = true
                case "," where containers.last == .array:
                    expectingValue = true
                    valueMayClose = true
                default:
                    break
                }
                advance()
            }
            if expectingKey { return problem("a key is missing at the end") }
            return expectingValue ? problem("a value is missing at the end") : nil
        }
    }
}
