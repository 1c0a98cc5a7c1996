// cluster-key-slot ships no types: the Redis Cluster hash slot (0 to 16383) of a key, hash tags
// ({...}) honoured, as the servers compute it.
declare module 'cluster-key-slot' {
  function generate(key: string | Buffer): number;
  export = generate;
}
