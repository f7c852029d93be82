import { describe, expect, it } from "vitest";
import { bindingsOfDocker, checkDuplicates, dockerPortMap, parseExpose, parsePublish, portLines, portsColumn, withPublishAll } from "../../../src/containers/ports.ts";

const tcp = (hostIp: string, hostPort: number, containerPort: number) => ({ hostIp, hostPort, containerPort, protocol: "tcp" as const });

describe("published ports", () => {
  it("reads every form of -p", () => {
    expect(parsePublish("80")).toEqual([tcp("", 0, 80)]);
    expect(parsePublish("8080:80")).toEqual([tcp("", 8080, 80)]);
    expect(parsePublish("8080:80/tcp")).toEqual([tcp("", 8080, 80)]);
    expect(parsePublish("127.0.0.1:8080:80")).toEqual([tcp("127.0.0.1", 8080, 80)]);
    expect(parsePublish("127.0.0.1::80")).toEqual([tcp("127.0.0.1", 0, 80)]);
    expect(parsePublish("8080-8081:80-81")).toEqual([tcp("", 8080, 80), tcp("", 8081, 81)]);
  });

  it("names the wrong part of a malformed -p and shows the accepted forms", () => {
    const cases: Array<[string, string]> = [
      ["80:abc", "the container port 'abc' is not a port"],
      ["99999:80", "the host port '99999' is not a port"],
      ["1.2.3:80:80", "the host address '1.2.3' is not an IPv4 address"],
      ["80/udpx", "the protocol 'udpx' is not tcp"],
      ["8000-8001:80-82", "ranges of different lengths"],
      ["8080:", "the container port is missing"],
      ["1:2:3:4", "too many ':'"],
      ["[::1]:8080:80", "is IPv6"],
    ];
    for (const [spec, why] of cases) {
      expect(() => parsePublish(spec), spec).toThrow(why);
      expect(() => parsePublish(spec), spec).toThrow("use -p [IP:][HOSTPORT:]CONTAINERPORT[/tcp]");
    }
    expect(() => parsePublish("53/udp")).toThrow(/UDP ports are not supported by hyperlab/);
  });

  it("reads Docker's PortBindings and ExposedPorts, and -P adds the exposed ports not bound yet", () => {
    expect(bindingsOfDocker({ "80/tcp": [{ HostIp: "", HostPort: "8080" }], "81/tcp": [{ HostIp: "127.0.0.1", HostPort: "" }], "82/tcp": null })).toEqual([
      tcp("", 8080, 80),
      tcp("127.0.0.1", 0, 81),
      tcp("", 0, 82),
    ]);
    expect(() => bindingsOfDocker({ "53/udp": [{}] })).toThrow("HostConfig.PortBindings '53/udp': UDP ports are not supported");
    expect(() => bindingsOfDocker({ "80/tcp": [{ HostPort: "x" }] })).toThrow("invalid hostPort: x");
    expect(withPublishAll([tcp("", 8080, 80)], [80, 90], true)).toEqual([tcp("", 8080, 80), tcp("", 0, 90)]);
    expect(withPublishAll([], [80], false)).toEqual([]);
    expect(parseExpose("8000-8002/tcp")).toEqual([8000, 8001, 8002]);
    expect(() => parseExpose("x")).toThrow("invalid --expose 'x'");
  });

  it("refuses one host port asked for twice", () => {
    expect(() => checkDuplicates([tcp("", 8080, 80), tcp("127.0.0.1", 8080, 81)])).toThrow("host port 127.0.0.1:8080 is asked for twice (for container ports 80 and 81)");
    expect(() => checkDuplicates([tcp("", 0, 80), tcp("", 0, 81)])).not.toThrow();
  });

  it("shows ports as docker ps, docker port and inspect do", () => {
    const published = [tcp("127.0.0.1", 32770, 81), tcp("127.0.0.1", 8080, 80)];
    expect(portsColumn(published, [90])).toBe("90/tcp, 127.0.0.1:8080->80/tcp, 127.0.0.1:32770->81/tcp");
    expect(portLines(published)).toEqual(["80/tcp -> 127.0.0.1:8080", "81/tcp -> 127.0.0.1:32770"]);
    expect(portLines(published, "81/tcp")).toEqual(["127.0.0.1:32770"]);
    expect(portLines(published, "99")).toEqual([]);
    expect(dockerPortMap(published, [80, 90])).toEqual({ "80/tcp": [{ HostIp: "127.0.0.1", HostPort: "8080" }], "81/tcp": [{ HostIp: "127.0.0.1", HostPort: "32770" }], "90/tcp": null });
  });
});
