using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("ActorQueue.Tests")]
[assembly: InternalsVisibleTo("ActorQueue.Benchmarks")]
