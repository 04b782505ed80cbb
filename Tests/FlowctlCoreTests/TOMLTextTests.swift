import FlowctlCore
import XCTest

/// The check before the TOML parser: a non-ASCII character where TOML
/// allows none is refused with its line, instead of reaching toml++,
/// whose assertion aborted the process (found by scripts/fuzz).
final class TOMLTextTests: XCTestCase {
    func testNonASCIIOutsideStringsAndCommentsIsRefusedWithItsLine() throws {
        // The fuzzer's input, reduced: a replacement character in a table header.
        let problem = try XCTUnwrap(TOMLText.check("log_level = \"info\"\n\n[\u{FFFD}bridge]]\nname = \"x\"\n"))
        XCTAssertEqual(problem.line, 3)
        XCTAssertEqual(problem.column, 2)
        XCTAssertTrue(problem.message.contains("U+FFFD outside a string or comment"), problem.message)
        XCTAssertEqual(TOMLText.check("clé = 1\n")?.line, 1)
    }

    func testNonASCIIInStringsAndCommentsIsFine() {
        XCTAssertNil(TOMLText.check("""
            # Kommentar: grüße
            name = "brücke"       # é
            path = 'C:\\ü'
            text = \"\"\"
            zwei "Zeilen" ü
            \"\"\"
            raw = '''
            ü ' ü
            '''
            escaped = "a \\" ü"
            [table]
            "quoted ü key" = 1
            """))
    }

    func testAStringEndsAtItsLineAndACommentAtItsNewline() {
        // An unterminated basic string is named on its own line.
        XCTAssertEqual(TOMLText.check("a = \"open\nü = 1\n")?.line, 1)
        XCTAssertTrue(TOMLText.check("a = \"open\nb = 1\n")?.message.contains("without its closing") ?? false)
        XCTAssertEqual(TOMLText.check("# ü\nü = 1\n")?.line, 2)
    }

    /// Where a key must start and none does (the fuzzer's second input:
    /// `[` at the end of the file) toml++ asserted too.
    func testAMissingKeyIsRefused() {
        XCTAssertEqual(TOMLText.check("log_level = \"info\"\n\n[\n")?.line, 3)
        XCTAssertEqual(TOMLText.check("[")?.message, "a key is missing at the end")
        XCTAssertNotNil(TOMLText.check("a. = 1\n"))
        XCTAssertNotNil(TOMLText.check("t = { , a = 1 }\n"))
        XCTAssertNotNil(TOMLText.check("[[ ]]\n"))
        XCTAssertNil(TOMLText.check("""
            [a.b]
            [[c."d e".f]]
            x.y = [1, [2, 3], { k = 1, m.n = "]" }]
            t = {}
            u = { a = 1 }
            arr = [
              "x",  # comment
              'y',
            ]
            """))
    }

    /// Where a value must start and none does (the fuzzer's third input:
    /// `["slow", "flowctl",}"x"]`) toml++ asserted as well.
    func testAMissingValueIsRefused() {
        XCTAssertEqual(TOMLText.check("modes = [\"slow\", \"flowctl\",}\"x\"]\n")?.message, "a value is missing before \"}\"")
        XCTAssertEqual(TOMLText.check("a =\nb = 1\n")?.line, 1)
        XCTAssertNotNil(TOMLText.check("a = # nothing\n"))
        XCTAssertNotNil(TOMLText.check("a = [1,,2]\n"))
        XCTAssertNotNil(TOMLText.check("t = { a = }\n"))
        XCTAssertNotNil(TOMLText.check("a = "))
        XCTAssertNil(TOMLText.check("a = [\n  1,\n  # two\n  2,\n]\nb = []\nc = [ ]\n"))
    }

    /// A carriage return without its line feed (the fuzzer's fourth input:
    /// `[[\rbridge]]`) and other control characters are refused; CRLF line ends are fine.
    func testControlCharactersAreRefused() {
        XCTAssertEqual(TOMLText.check("[[\rbridge]]\n")?.message, "control character U+000D (TOML allows only tab and line ends)")
        XCTAssertNotNil(TOMLText.check("a = \"x\u{1}y\"\n"))
        XCTAssertNotNil(TOMLText.check("# bell \u{7}\n"))
        XCTAssertNil(TOMLText.check("a = 1\r\nb = \"\tx\"\r\n[t]\r\n"))
    }
}
