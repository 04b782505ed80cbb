import FlowctlCore
import Foundation
import Logging
import ServiceLifecycle

/// The daemon as a swift-service-lifecycle Service: the blocking event loop
/// runs on its own thread; graceful shutdown (SIGTERM, SIGINT) stops it,
/// and the fast path stays in place unless `cleanupOnExit`.
public final class DaemonService: Service, @unchecked Sendable {
    let loop: DaemonLoop
    let cleanup: (@Sendable () throws -> Void)?
    let logger: Logger

    public init(loop: DaemonLoop, logger: Logger, cleanup: (@Sendable () throws -> Void)?) {
        self.loop = loop
        self.logger = logger
        self.cleanup = cleanup
    }

    public func run() async throws {
        let loop = self.loop
        await withGracefulShutdownHandler {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                let thread = Thread {
                    loop.run()
                    done.resume()
                }
                thread.name = "flowctl-loop"
                thread.stackSize = 1 << 22
                thread.start()
            }
        } onGracefulShutdown: {
            loop.stop()
        }
        if let cleanup {
            do {
                try cleanup()
                logger.notice("fast path removed (cleanup on exit)")
            } catch {
                logger.error("cleanup on exit failed", metadata: ["error": "\(error)"])
                throw error
            }
        } else {
            logger.notice("daemon stopped; the fast path stays in place and the next start adopts it")
        }
    }
}
