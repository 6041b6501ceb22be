// The official Node tus server (@tus/server with its file store): the anchor of the large-upload
// benchmark.  Usage: node server.mjs PORT DIRECTORY   (listens on 127.0.0.1, path /files/)
import http from "node:http";
import { Server } from "@tus/server";
import { FileStore } from "@tus/file-store";

const [port, directory] = process.argv.slice(2);
const tus = new Server({ path: "/files", datastore: new FileStore({ directory }) });
http
  .createServer((req, res) => tus.handle(req, res))
  .listen(Number(port), "127.0.0.1", () => console.log(`tus-node listening on ${port}`));
