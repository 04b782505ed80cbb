/// Checks a TOML document for what the TOML parser underneath (toml++
/// inside TOMLKit, compiled with its assertions on) aborts on instead of
/// reporting: a non-ASCII character outside strings and comments, where
/// TOML 1.0 allows none (bare keys are A-Z a-z 0-9 _ -). Found by the
/// fuzzer: `[\u{FFFD}bridge]]` killed the process. Pure; no parsing beyond
/// strings and comments.
public enum TOMLText {
    public struct Problem: Error, Hashable, Sendable {
        public var line: Int
        public var column: Int
        public var message: String
    }

    public static func check(_ text: String) -> Problem? {
        enum State { case plain, comment, basic, literal, multiBasic, multiLiteral }
        var state = State.plain
        var line = 1, column = 0
        let scalars = Array(text.unicodeScalars)
        var index = 0
        func starts(_ pattern: String) -> Bool {
            let pattern = Array(pattern.unicodeScalars)
            return index + pattern.count <= scalars.count && Array(scalars[index..<index + pattern.count]) == pattern
        }
        while index < scalars.count {
            let scalar = scalars[index]
            column += 1
            if scalar == "\n" {
                line += 1
                column = 0
                if state == .comment || state == .basic || state == .literal { state = .plain }
                index += 1
                continue
            }
            switch state {
            case .plain:
                if scalar.value > 0x7F {
                    return Problem(line: line, column: column,
                                   message: "character U+\(String(scalar.value, radix: 16, uppercase: true)) outside a string or comment (keys are ASCII letters, digits, _ and -; quote anything else)")
                }
                if scalar == "#" { state = .comment }
                else if starts("\"\"\"") { state = .multiBasic; index += 2; column += 2 }
                else if starts("'''") { state = .multiLiteral; index += 2; column += 2 }
                else if scalar == "\"" { state = .basic }
                else if scalar == "'" { state = .literal }
            case .comment:
                break
            case .basic:
                if scalar == "\\" { index += 1; column += 1 } else if scalar == "\"" { state = .plain }
            case .literal:
                if scalar == "'" { state = .plain }
            case .multiBasic:
                if scalar == "\\" { index += 1; column += 1 } else if starts("\"\"\"") { state = .plain; index += 2; column += 2 }
            case .multiLiteral:
                if starts("'''") { state = .plain; index += 2; column += 2 }
            }
            index += 1
        }
        return nil
    }
}
