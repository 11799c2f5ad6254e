using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("ActorQueue.Tests")]
[assembly: InternalsVisibleTo("ActorQueue.Benchmarks")]
[assembly: InternalsVisibleTo("ActorQueue.Persistence")]
